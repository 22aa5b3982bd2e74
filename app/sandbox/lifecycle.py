"""A job's life on the sandbox clock, computed lazily: ``settle(job, now)`` replays every
transition due by ``now`` and stamps each with the time it happened, not the time it was
observed. So the history depends only on the clock, not on when anyone looked.

validating_files (``validation_s``) -> queued (``queue_s``) -> running (one step every
``seconds_per_step``: a metrics event per step, a checkpoint per epoch, the last 3 kept)
-> succeeded (fine-tuned model, trained tokens, result file). Validation failures end in
failed. Pause stops the running clock of a job; resume queues it again, then it carries on
from the step it reached.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.sandbox import metrics
from app.sandbox.catalog import resolve_base_model
from app.sandbox.records import CheckpointRecord, Event, FineTunedModel, Job
from app.sandbox.training_data import (
    AUTO_DPO_BETA,
    auto_batch_size,
    auto_epochs,
    auto_learning_rate_multiplier,
    billable_tokens_per_epoch,
    load_examples,
)
from app.sandbox.validation import validate_file

if TYPE_CHECKING:
    from app.sandbox.state import SandboxState

CHECKPOINTS_KEPT = 3


@dataclass(frozen=True)
class Timing:
    """How long each phase takes on the sandbox clock."""

    seconds_per_step: float = 0.5
    validation_s: float | None = None
    """Time spent validating files; default 3 steps' worth."""
    queue_s: float | None = None
    """Time spent queued (also after a resume); default 2 steps' worth."""

    @property
    def validation(self) -> float:
        return self.validation_s if self.validation_s is not None else 3 * self.seconds_per_step

    @property
    def queue(self) -> float:
        return self.queue_s if self.queue_s is not None else 2 * self.seconds_per_step


def add_event(state: SandboxState, job: Job, at: float, message: str, **fields: Any) -> None:
    job.events.append(Event(id=state.new_id("ftevent-"), created_at=at, message=message, **fields))


def estimated_finish(state: SandboxState, job: Job) -> float | None:
    """While running: when the last step will be done, if nothing pauses it."""
    if job.status != "running" or job.total_steps is None:
        return None
    remaining = job.total_steps - job.segment_start_step
    return job.status_since + remaining * state.timing.seconds_per_step


def settle(state: SandboxState, job: Job, now: float) -> None:
    """Apply every transition of ``job`` that is due by ``now``."""
    timing = state.timing
    while True:
        if job.status == "validating_files":
            at = job.status_since + timing.validation
            if now < at:
                return
            _finish_validation(state, job, at)
        elif job.status == "queued":
            at = job.status_since + timing.queue
            if now < at:
                return
            _start_running(state, job, at)
        elif job.status == "running":
            _run_steps(state, job, now)
            return
        else:  # paused or terminal: nothing happens by itself
            return


def _fail(state: SandboxState, job: Job, at: float, error: dict[str, Any]) -> None:
    job.status = "failed"
    job.status_since = at
    job.finished_at = at
    job.error = error
    add_event(state, job, at, error["message"], level="error")
    add_event(state, job, at, "The job failed", level="error")


def _finish_validation(state: SandboxState, job: Job, at: float) -> None:
    base = resolve_base_model(job.base_model)
    assert base is not None  # checked at creation
    for param, file_id in (
        ("training_file", job.training_file),
        ("validation_file", job.validation_file),
    ):
        if file_id is None:
            continue
        stored = state.files.get(file_id)
        # Files never change once uploaded, so one check serves every job that uses the
        # file the same way (hundreds of jobs on one file validate once).
        key = ("check", file_id, param, base.id, job.method)
        if stored is None or key not in state.derived:
            error = validate_file(stored, file_id, param=param, model=base.id, method=job.method)
            if stored is not None:
                state.derived[key] = error
        else:
            error = state.derived[key]
        if error is not None:
            _fail(state, job, at, error)
            return

    key = ("examples", job.training_file, base.id)
    if key not in state.derived:
        state.derived[key] = load_examples(
            state.files[job.training_file].path.read_bytes(), base.id
        )
    examples = state.derived[key]
    n = len(examples)
    resolved = dict(job.requested)
    if resolved.get("n_epochs") == "auto":
        resolved["n_epochs"] = auto_epochs(n)
    if resolved.get("batch_size") == "auto":
        resolved["batch_size"] = auto_batch_size(n)
    if resolved.get("learning_rate_multiplier") == "auto":
        resolved["learning_rate_multiplier"] = auto_learning_rate_multiplier(resolved["batch_size"])
    if resolved.get("beta") == "auto":
        resolved["beta"] = AUTO_DPO_BETA
    job.hyperparameters = resolved
    job.steps_per_epoch = max(1, math.ceil(n / resolved["batch_size"]))
    job.total_steps = job.steps_per_epoch * resolved["n_epochs"]
    job.billable_tokens_per_epoch = billable_tokens_per_epoch(examples, base.example_token_limit)
    job.memory = [(e.prompt, e.reply) for e in examples]

    job.status = "queued"
    job.status_since = at
    add_event(state, job, at, "Files validated, moving job to queued state")


def _start_running(state: SandboxState, job: Job, at: float) -> None:
    job.status = "running"
    job.status_since = at
    job.segment_start_step = job.steps_done
    if job.started:
        add_event(state, job, at, f"Fine-tuning job resumed from step {job.steps_done}")
    else:
        job.started = True
        add_event(state, job, at, "Fine-tuning job started")


def _run_steps(state: SandboxState, job: Job, now: float) -> None:
    assert job.total_steps is not None and job.steps_per_epoch is not None
    per_step = state.timing.seconds_per_step
    if per_step <= 0:
        due = job.total_steps
    else:
        # A small epsilon keeps exact multiples of the step length from rounding down.
        due = job.segment_start_step + math.floor((now - job.status_since) / per_step + 1e-9)
    due = min(due, job.total_steps)
    at = job.status_since
    for step in range(job.steps_done + 1, due + 1):
        at = job.status_since + (step - job.segment_start_step) * max(per_step, 0.0)
        _record_step(state, job, step, at)
    if job.steps_done >= job.total_steps:
        _succeed(state, job, at)


def _record_step(state: SandboxState, job: Job, step: int, at: float) -> None:
    assert job.total_steps is not None and job.steps_per_epoch is not None
    data = metrics.step_metrics(
        job.seed,
        step,
        job.total_steps,
        steps_per_epoch=job.steps_per_epoch,
        has_validation=job.validation_file is not None,
    )
    job.steps_done = step
    job.metric_rows.append(data)
    add_event(state, job, at, metrics.step_message(data), type="metrics", data=dict(data))
    if step % job.steps_per_epoch == 0:
        checkpoint = CheckpointRecord(
            id=state.new_id("ftckpt_"),
            created_at=at,
            step=step,
            model=f"{job.model_name}:ckpt-step-{step}",
            metrics={k: v for k, v in data.items() if k != "total_steps"},
        )
        job.checkpoints.append(checkpoint)
        state.register_model(
            FineTunedModel(checkpoint.model, at, job.organization_id, job.id, job.base_model)
        )
        while len(job.checkpoints) > CHECKPOINTS_KEPT:
            dropped = job.checkpoints.pop(0)
            state.unregister_model(dropped.model)
        add_event(state, job, at, f"Checkpoint created at step {step}")


def _succeed(state: SandboxState, job: Job, at: float) -> None:
    assert job.billable_tokens_per_epoch is not None
    job.trained_tokens = job.billable_tokens_per_epoch * job.hyperparameters["n_epochs"]
    content = metrics.result_csv(job.metric_rows).encode()
    if state.base64_result_files:
        content = base64.b64encode(content)
    result = state.add_file("step_metrics.csv", "fine-tune-results", content, at)
    job.result_files = [result.id]
    state.register_model(
        FineTunedModel(job.model_name, at, job.organization_id, job.id, job.base_model)
    )
    job.fine_tuned_model = job.model_name
    job.status = "succeeded"
    job.status_since = at
    job.finished_at = at
    add_event(state, job, at, f"New fine-tuned model created: {job.model_name}")
    add_event(state, job, at, "Evaluating model against our usage policies")
    add_event(
        state, job, at, "Usage policy evaluations completed, model is now enabled for sampling"
    )
    add_event(state, job, at, "The job has successfully completed")
