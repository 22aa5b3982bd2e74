"""A Together job's life on the sandbox clock, computed lazily like the OpenAI emulator's:
``settle(state, job, now)`` replays every transition due by ``now``, stamped with the time
it happened.

pending (``validation_s``: the files are checked with ftm's data check) -> queued
(``queue_s``) -> running (one step every ``seconds_per_step``; ``epoch_complete`` and
``checkpoint_save`` events as they fall due) -> compressing (one step) -> uploading (one
step) -> completed. A bad file ends in ``error`` with a ``job_error`` event. A cancel
request moves the job to ``cancel_requested``, then ``cancelled`` one step later.

``token_count`` is set once the files are read; ``total_price`` (nanodollars, rates.py)
grows with the steps run, so a cancelled job pays for what it ran.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from app.sandbox.together import rates
from app.sandbox.together.catalog import TOKENIZER_PROXY
from app.sandbox.together.records import TogetherEvent, TogetherJob
from app.sandbox.training_data import load_examples
from app.sandbox.validation import validate_file

if TYPE_CHECKING:
    from app.sandbox.together.state import TogetherState

# Together's method names onto the data check's (app/sandbox/validation.py).
CHECK_METHOD = {"sft": "supervised", "dpo": "dpo"}


def add_event(job: TogetherJob, at: float, type: str, message: str, **fields: object) -> None:
    job.events.append(TogetherEvent(created_at=at, type=type, message=message, **fields))
    job.updated_at = max(job.updated_at, at)


def _move(job: TogetherJob, status: str, at: float) -> None:
    job.status = status
    job.status_since = at
    job.updated_at = max(job.updated_at, at)


def settle(state: TogetherState, job: TogetherJob, now: float) -> None:
    """Apply every transition of ``job`` that is due by ``now``."""
    step = state.timing.seconds_per_step
    while True:
        if job.status == "pending":
            at = job.status_since + state.timing.validation
            if now < at:
                return
            _finish_validation(state, job, at)
        elif job.status == "queued":
            at = job.status_since + state.timing.queue
            if now < at:
                return
            _start_running(job, at)
        elif job.status == "running":
            if not _run_steps(state, job, now):
                return
        elif job.status in ("compressing", "uploading", "cancel_requested"):
            at = job.status_since + step
            if now < at:
                return
            _next_after_step(job, at)
        else:  # completed, cancelled, error: nothing happens by itself
            return


def _finish_validation(state: TogetherState, job: TogetherJob, at: float) -> None:
    method = CHECK_METHOD[job.training_method["method"]]
    files = [("training_file", job.training_file)]
    if job.validation_file:
        files.append(("validation_file", job.validation_file))
    for param, file_id in files:
        error = validate_file(
            state.files.get(file_id), file_id, param=param, model=job.model, method=method
        )
        if error is not None:
            _move(job, "error", at)
            add_event(job, at, "job_error", error["message"], level="error")
            return
    train = load_examples(state.files[job.training_file].path.read_bytes(), TOKENIZER_PROXY)
    train_tokens = sum(example.tokens for example in train)
    eval_tokens = 0
    if job.validation_file:
        evals = load_examples(state.files[job.validation_file].path.read_bytes(), TOKENIZER_PROXY)
        eval_tokens = sum(example.tokens for example in evals)
    job.token_count = job.n_epochs * train_tokens + job.n_evals * eval_tokens
    job.total_steps = max(1, math.ceil(len(train) / job.batch_size)) * job.n_epochs
    add_event(job, at, "training_data_download_complete", "Training data validated")
    _move(job, "queued", at)


def _start_running(job: TogetherJob, at: float) -> None:
    _move(job, "running", at)
    add_event(job, at, "job_start", "Job started")
    add_event(job, at, "model_download_complete", f"Model {job.model} downloaded")
    add_event(job, at, "training_start", "Training started")


def _checkpoint_steps(job: TogetherJob) -> set[int]:
    """The steps a checkpoint is saved at: ``n_checkpoints`` spread evenly, the last at the
    final step."""
    count = min(job.n_checkpoints, job.total_steps)
    return {math.ceil(job.total_steps * (i + 1) / count) for i in range(count)}


def _charge(job: TogetherJob) -> None:
    full = rates.price_nanodollars(
        job.token_count,
        job.param_count,
        method=job.training_method["method"],
        lora=job.lora,
    )
    job.total_price = full * job.steps_done // job.total_steps


def _run_steps(state: TogetherState, job: TogetherJob, now: float) -> bool:
    """Record the steps due by ``now``; True once training has finished."""
    per_step = state.timing.seconds_per_step
    elapsed = now - job.status_since
    due = job.total_steps if per_step == 0 else min(job.total_steps, int(elapsed // per_step))
    steps_per_epoch = job.total_steps // job.n_epochs
    checkpoints = _checkpoint_steps(job)
    for step in range(job.steps_done + 1, due + 1):
        at = job.status_since + step * per_step
        job.steps_done = step
        if step % steps_per_epoch == 0:
            job.epochs_completed = step // steps_per_epoch
            add_event(job, at, "epoch_complete", f"Epoch completed, at step {step}", step=step)
        if step in checkpoints:
            add_event(
                job,
                at,
                "checkpoint_save",
                f"New checkpoint saved at step {step}",
                step=step,
                checkpoint_path=f"s3://together-sandbox/finetune/{job.id}/checkpoint-{step}",
            )
        _charge(job)
    if job.steps_done < job.total_steps:
        return False
    at = job.status_since + job.total_steps * per_step
    add_event(job, at, "training_complete", "Training completed", step=job.total_steps)
    _move(job, "compressing", at)
    add_event(job, at, "model_compressing", "Compressing output model")
    return True


def _next_after_step(job: TogetherJob, at: float) -> None:
    if job.status == "compressing":
        add_event(job, at, "model_compression_complete", "Model compression complete")
        _move(job, "uploading", at)
        add_event(job, at, "model_uploading", "Uploading output model")
    elif job.status == "uploading":
        add_event(
            job,
            at,
            "model_upload_complete",
            "Model upload complete",
            model_path=job.model_output_path,
        )
        _move(job, "completed", at)
        add_event(job, at, "job_complete", f"Job finished: {job.model_output_name} is ready")
    else:  # cancel_requested
        _move(job, "cancelled", at)
        add_event(job, at, "job_stopped", "Job cancelled")


def request_cancel(state: TogetherState, job: TogetherJob, at: float) -> None:
    """Ask a live job to stop; the steps it ran stay charged."""
    add_event(job, at, "cancel_requested", "Cancel requested")
    _move(job, "cancel_requested", at)
