"""Migrate an alias to another provider — the answer to a sunsetting hosted model:

1. read what the alias holds now, the job that made it (dataset, settings) and the eval
   that justified it;
2. launch the same dataset on the new provider (`launch_job`, which uploads it there),
   its settings mapped by the two providers (`app.promotion.recipes`: epochs, learning
   rate, batch size, LoRA settings), the mapping printed before anything is sent;
3. wait for the job, refreshing it (`refresh_job`, the poller's own recording);
4. evaluate the new model — and its base, for the forgetting check — with the promoted
   model's eval config on the same eval set (cached completions are reused);
5. compare with the promoted model, run the gates, and promote when they pass.

Each step is reported through ``on_event`` as it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from app.evaluation.candidates import Candidate
from app.evaluation.runner import EvalConfig, EvalError, run_eval
from app.promotion.aliases import current, promote
from app.promotion.gates import GateReport, check_gates
from app.promotion.recipes import RecipeError, carry_recipe, mapping_text
from app.promotion.sunsets import job_creation_cutoff, sunset_of
from db.engine import read_session
from db.models import EvalRun, Job, Promotion


class MigrationError(RuntimeError):
    """The migration stopped; the message says at which step and why."""


@dataclass
class MigrationRequest:
    task: str
    alias: str
    to_provider: str
    base_model: str
    method: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    options: dict = field(default_factory=dict)
    why: str | None = None
    promote: bool = True
    timeout_s: float = 3600.0
    poll_s: float = 0.5


@dataclass
class MigrationResult:
    job: Job
    run: EvalRun
    base_run: EvalRun | None
    report: GateReport
    promotion: Promotion | None

    @property
    def promoted(self) -> bool:
        return self.promotion is not None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def wait_for_job(
    engine: Engine, job_id: int, timeout_s: float, poll_s: float, on_event: Callable[[str], None]
) -> Job:
    """Refresh the job until it ends, reporting status and step changes."""
    from app.jobs.actions import refresh_job

    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        refresh_job(job_id, engine=engine)
        with read_session(engine) as session:
            job = session.get(Job, job_id)
        shown = (job.status, job.step)
        if shown != last:
            progress = f" step {job.step}/{job.total_steps}" if job.step is not None else ""
            loss = f", loss {job.train_loss:.3f}" if job.train_loss is not None else ""
            on_event(f"  job {job.id}: {job.status}{progress}{loss}")
            last = shown
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise MigrationError(
                f"job {job_id} still {job.status} after {timeout_s:.0f}s; it keeps running — "
                f"follow it with `ftm jobs show {job_id}` and promote it later"
            )
        time.sleep(poll_s)


def migrate_alias(
    engine: Engine,
    req: MigrationRequest,
    *,
    on_event: Callable[[str], None] = lambda _: None,
    provider_for: Callable | None = None,
) -> MigrationResult:
    from app.evaluation.data import eval_examples, training_examples
    from app.evaluation.service import provider_cache
    from app.jobs.launch import LaunchError, launch_job

    provider_for = provider_for or provider_cache()

    # 1. what the alias holds
    holder = current(engine, req.task, req.alias)
    if holder is None:
        raise MigrationError(f"task {req.task!r} has no alias {req.alias!r} to migrate")
    held = holder.promotion
    on_event(f"[1/5] {req.task}/{req.alias} holds {held.model} ({held.provider})")
    sunset = sunset_of(held.provider, held.model, held.base_model)
    if sunset:
        on_event(f"      ! {sunset.message}")
    cutoff = job_creation_cutoff(held.provider)
    if cutoff is not None:
        on_event(f"      ! {cutoff.message}")
    with read_session(engine) as session:
        source = session.get(Job, held.job_id) if held.job_id else None
        promoted_run = session.get(EvalRun, held.eval_run_id) if held.eval_run_id else None
    if source is None or source.dataset_id is None:
        raise MigrationError(
            f"{held.model} has no recorded job with a dataset, so there is nothing to re-train "
            "from; launch a job on the new provider yourself and promote it"
        )
    if promoted_run is None:
        raise MigrationError(f"{held.model} was promoted without an eval run to compare against")
    try:
        carried = carry_recipe(
            source,
            req.to_provider,
            epochs=req.epochs,
            batch_size=req.batch_size,
            method=req.method,
            overrides=req.options,
        )
    except RecipeError as exc:
        raise MigrationError(str(exc)) from None
    plan = carried.translation
    on_event(
        f"      trained by job {source.id} ({source.provider}, {source.method}) on dataset "
        f"{source.dataset_id}; judged by eval run {promoted_run.id}"
    )

    # 2. launch the same data, with the settings mapped, elsewhere
    on_event(f"[2/5] launching on {req.to_provider}: {req.base_model} ({plan.method})")
    on_event(f"      settings, {source.provider} -> {req.to_provider}:")
    for line in mapping_text(plan.lines):
        on_event(line)
    try:
        job = launch_job(
            req.to_provider,
            source.dataset_id,
            req.base_model,
            method=plan.method,
            hyperparameters=plan.hyperparameters,
            seed=carried.source.seed,
            options=plan.options,
            suffix=f"migrated-{req.alias}",
            engine=engine,
        )
    except LaunchError as exc:
        raise MigrationError(f"launch on {req.to_provider} failed: {exc}") from None
    on_event(f"      job {job.id} created ({job.remote_id})")

    # 3. wait for it
    on_event(f"[3/5] waiting for job {job.id}")
    job = wait_for_job(engine, job.id, req.timeout_s, req.poll_s, on_event)
    if job.status != "succeeded" or not job.fine_tuned_model:
        reason = (job.error or {}).get("message", job.status)
        raise MigrationError(f"job {job.id} ended {job.status}: {reason}; the alias is unchanged")
    on_event(f"      model: {job.fine_tuned_model}")

    # 4. evaluate on the same eval set with the same config
    stored = dict(promoted_run.config or {})
    stored.pop("candidate", None)
    config = EvalConfig.from_dict(stored)
    examples = eval_examples(engine, config.dataset_id, config.eval_split)
    train = training_examples(engine, config.train_dataset_id or config.dataset_id)
    provider = provider_for(req.to_provider)
    on_event(
        f"[4/5] evaluating on the same eval set ({len(examples)} examples, "
        f"scorers {', '.join(config.scorers)})"
    )
    try:
        base_run = run_eval(
            Candidate("zero_shot", req.to_provider, req.base_model),
            examples,
            config,
            provider=provider,
            engine=engine,
            train_examples=train,
        )
        run = run_eval(
            Candidate(
                "fine_tuned",
                req.to_provider,
                job.fine_tuned_model,
                job_id=job.id,
                base_model=req.base_model,
            ),
            examples,
            config,
            provider=provider,
            engine=engine,
            train_examples=train,
        )
    except EvalError as exc:
        raise MigrationError(f"evaluating the new model failed: {exc}") from None
    old_q = (promoted_run.summary or {}).get("task", {}).get("quality")
    new_q = (run.summary or {}).get("task", {}).get("quality")
    old_g = ((promoted_run.summary or {}).get("general") or {}).get("score")
    new_g = ((run.summary or {}).get("general") or {}).get("score")
    on_event(f"      promoted {held.model}: quality {_fmt(old_q)}, general {_fmt(old_g)}")
    on_event(
        f"      new      {job.fine_tuned_model}: quality {_fmt(new_q)}, "
        f"general {_fmt(new_g)} (run {run.id})"
    )

    # 5. gates, then promotion
    report = check_gates(engine, run.id)
    on_event("[5/5] gates:")
    for g in report.results:
        on_event(f"      {'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}")
    promotion = None
    if not report.passed:
        on_event(f"      not promoted: {req.task}/{req.alias} still holds {held.model}")
    elif not req.promote:
        on_event("      gates pass; not promoted (--no-promote)")
    else:
        why = req.why or f"migrated from {held.model} ({held.provider}) to {req.to_provider}"
        promotion, _ = promote(engine, task=req.task, alias=req.alias, run_id=run.id, why=why)
        on_event(
            f"      promoted: {req.task}/{req.alias} -> {promotion.model} (#{promotion.id}); "
            f"roll back with: ftm promote --task {req.task} --alias {req.alias} --rollback"
        )
    return MigrationResult(job, run, base_run, report, promotion)
