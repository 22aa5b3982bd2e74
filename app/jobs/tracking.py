"""Apply what a provider reported to a job's rows: status along the state machine, new
events, metrics, checkpoints, artifacts, progress and stall detection, and the actual cost
when the job ends.

Everything here runs inside one short write transaction and is idempotent, so two pollers
(or a poller and a CLI command) applying the same refresh store everything once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from sqlmodel import Session

from app.jobs.health import record_health
from app.settings import HealthSettings, get_settings
from db import repository
from db.models import Job
from providers.types import JobStatus, Refresh, RemoteJob

STALL_STATUSES = {JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING}


@dataclass
class Applied:
    """What applying one refresh changed."""

    status_changed: bool = False
    finished: bool = False
    """The job reached a terminal status now (and nobody recorded it before)."""
    new_events: int = 0
    new_metrics: int = 0
    new_checkpoints: int = 0
    stalled_now: bool = False
    health: list[str] = field(default_factory=list)
    """Training-health findings recorded now (their messages), each once per job."""


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they are UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def stored_remote(remote: RemoteJob) -> RemoteJob:
    """``remote`` as the database keeps it: a local job's directory and model as
    references under the storage root (`db.storage`), never this machine's paths."""
    store = get_settings().file_store
    return replace(
        remote,
        remote_id=store.ref_for(remote.remote_id),
        fine_tuned_model=store.ref_for(remote.fine_tuned_model),
    )


def apply_remote(
    session: Session, job: Job, remote: RemoteJob, *, now: datetime, allow_terminal: bool = True
) -> Applied:
    """Copy a `RemoteJob` onto ``job`` (status moves only forward along the state machine).

    With ``allow_terminal=False`` a terminal status is not applied: only a full refresh
    (`apply_refresh`) may end a job, so its last events, metrics and checkpoints are always
    recorded. The poller keeps refreshing a job until then.
    """
    out = Applied()
    before = JobStatus(job.status)
    remote = stored_remote(remote)
    if remote.status.is_terminal and not allow_terminal:
        remote = replace(remote, status=before, error=None, finished_at=None)
    if remote.remote_id and not job.remote_id:
        job.remote_id = remote.remote_id
    if remote.status.is_terminal and remote.finished_at and not before.is_terminal:
        job.finished_at = remote.finished_at
    out.status_changed = repository.set_status(session, job, remote.status, strict=False)
    out.finished = out.status_changed and remote.status.is_terminal
    if out.status_changed:
        repository.add_local_event(
            session,
            job,
            f"Status: {before} -> {remote.status}"
            + (
                f" ({remote.raw_status})"
                if remote.raw_status and remote.raw_status != remote.status.value
                else ""
            ),
            type="status",
            key=f"status:{remote.status}",
        )
    if remote.fine_tuned_model:
        job.fine_tuned_model = remote.fine_tuned_model
    if remote.hyperparameters:
        job.hyperparameters = {**(job.hyperparameters or {}), **remote.hyperparameters}
    if remote.trained_tokens is not None:
        job.trained_tokens = remote.trained_tokens
    if remote.billed_usd is not None:
        job.billed_usd = remote.billed_usd
    if remote.error is not None and (remote.status.is_terminal or job.error is None):
        job.error = asdict(remote.error)
    if remote.step is not None and (job.step is None or remote.step >= job.step):
        job.step = remote.step
    if remote.total_steps is not None:
        job.total_steps = remote.total_steps
    if remote.estimated_finish is not None and not JobStatus(job.status).is_terminal:
        job.eta_s = max(0.0, (remote.estimated_finish - now).total_seconds())
    elif JobStatus(job.status).is_terminal:
        job.eta_s = None
    job.updated_at = now
    session.add(job)
    return out


def apply_refresh(
    session: Session,
    job: Job,
    refresh: Refresh,
    *,
    now: datetime | None = None,
    stall_after_s: float | None = None,
    health: HealthSettings | None = None,
) -> Applied:
    """Record one refresh. ``job`` must have been loaded in ``session`` (fresh)."""
    now = now or datetime.now(UTC)
    step_before = job.step
    out = apply_remote(session, job, refresh.job, now=now)
    out.new_events = repository.record_events(session, job, refresh.events)
    out.new_metrics = repository.record_metrics(session, job, refresh.metrics)
    store = get_settings().file_store
    checkpoints = [replace(c, model_ref=store.ref_for(c.model_ref)) for c in refresh.checkpoints]
    artifacts = [replace(a, uri=store.ref_for(a.uri)) for a in refresh.artifacts]
    out.new_checkpoints = repository.record_checkpoints(session, job, checkpoints)
    repository.record_artifacts(session, job, artifacts)
    if refresh.events_cursor:
        job.events_cursor = refresh.events_cursor
    _update_last_losses(job, refresh, step_before)
    progressed = (
        out.status_changed
        or out.new_events
        or out.new_metrics
        or (job.step or 0) > (step_before or 0)
    )
    if progressed:
        job.last_progress_at = now
        job.stalled = False
    elif stall_after_s is not None:
        out.stalled_now = check_stall(session, job, now=now, stall_after_s=stall_after_s)
    session.add(job)
    # Every refresh: local workers write their metrics straight to the database, so this
    # refresh may carry none although the job has new points.
    out.health = [f.message for f in record_health(session, job, health, refresh.metrics)]
    if out.finished:
        record_actual_cost(session, job)
    return out


def _update_last_losses(job: Job, refresh: Refresh, since_step: int | None) -> None:
    """The newest train/eval loss and step, from the metric points in this refresh."""
    for p in sorted(refresh.metrics, key=lambda p: p.step):
        if since_step is not None and p.step < since_step:
            continue  # already known (e.g. the result file's early rows)
        if p.train_loss is not None:
            job.train_loss = p.train_loss
        if p.eval_loss is not None:
            job.eval_loss = p.eval_loss
        job.step = max(job.step or 0, p.step)


def check_stall(session: Session, job: Job, *, now: datetime, stall_after_s: float) -> bool:
    """Flag a job with no progress for ``stall_after_s``: one warning event per stall (the
    event is keyed on when progress stopped, so pollers racing record it once)."""
    status = JobStatus(job.status)
    if status not in STALL_STATUSES:
        return False
    since = _aware(job.last_progress_at or job.started_at or job.created_at)
    if since is None or (now - since).total_seconds() < stall_after_s:
        return False
    minutes = (now - since).total_seconds() / 60
    recorded = repository.add_local_event(
        session,
        job,
        f"No progress for {minutes:.0f} min (status {status}, step {job.step or 0}); the "
        "provider may be stuck: check its status page, or cancel and launch again",
        level="warn",
        type="stall",
        key=f"stall:{since.isoformat()}",
    )
    job.stalled = True
    session.add(job)
    return recorded


def record_actual_cost(session: Session, job: Job) -> None:
    """Record the job's actual cost once it ended, if the costs area is installed.

    Guarded: `app.costs.actuals` is provided by the costs area; while it is absent, jobs end
    without actual figures. A failure there never loses the job's own status update: it
    runs in a savepoint and becomes a warning event.
    """
    try:
        from app.costs.actuals import record_actual
    except ModuleNotFoundError as exc:
        if exc.name in ("app.costs", "app.costs.actuals"):
            return
        raise
    try:
        with session.begin_nested():
            record_actual(session, job)
    except Exception as exc:  # costs must not break tracking
        repository.add_local_event(
            session,
            job,
            f"Could not record the actual cost: {type(exc).__name__}: {exc}",
            level="warn",
            key="actual-cost-error",
        )
