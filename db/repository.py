"""Data access shared by the use-cases, the poller and the training workers.

Every function takes an open session and does one short piece of work; the caller owns
the transaction (use `db.engine.write_session`). Recording is idempotent where two
writers may race (two pollers, a poller and a worker): events, metric points and
checkpoints are deduplicated by their natural keys, so recording twice stores once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from db.models import Artifact, Checkpoint, Job, JobEvent, MetricPoint, utcnow
from providers.types import RESUMED_STATUS, InvalidTransition, JobStatus
from providers.types import Artifact as ArtifactInfo
from providers.types import Checkpoint as CheckpointInfo
from providers.types import JobEvent as EventInfo
from providers.types import MetricPoint as MetricInfo


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    return job


def set_status(session: Session, job: Job, new: JobStatus | str, *, strict: bool = True) -> bool:
    """Move ``job`` along the state machine. Returns whether the status changed.

    With ``strict`` an illegal move raises `InvalidTransition`; without, it is ignored
    (a poller that read a stale status must not drag a finished job back).
    """
    new = JobStatus(new)
    current = JobStatus(job.status)
    if not current.can_move_to(new):
        if strict:
            raise InvalidTransition(f"job {job.id}: cannot move from {current} to {new}")
        return False
    if new == current:
        return False
    job.status = new.value
    now = utcnow()
    job.updated_at = now
    if new == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if new.is_terminal:
        job.finished_at = job.finished_at or now
    session.add(job)
    return True


def reopen_for_resume(session: Session, job: Job, reason: str, *, key: str | None = None) -> None:
    """Move a failed or cancelled job back to queued to continue from its last checkpoint.

    The only move out of a terminal state (`JobStatus.can_resume_from`): clears the
    finish time, error and ETA, and records ``reason`` as a status event (once per ``key``).

    Raises:
        InvalidTransition: the job is not in a state that can be resumed (not failed).
    """
    current = JobStatus(job.status)
    if not current.can_resume_from:
        raise InvalidTransition(
            f"job {job.id}: only a failed or cancelled job can be resumed from its checkpoint "
            f"(it is {current})"
        )
    job.status = RESUMED_STATUS.value
    job.finished_at = None
    job.error = None
    job.eta_s = None
    job.updated_at = utcnow()
    session.add(job)
    add_local_event(
        session, job, reason, type="status", key=key or f"resume:{utcnow().timestamp():.6f}"
    )


def _insert_ignoring_duplicates(session: Session, rows: Iterable[object]) -> int:
    """Insert rows, skipping those a unique key already holds.

    All at once first, in one savepoint (the common case: callers filtered out what is
    stored, and a `write_session` holds the writer lock from BEGIN on SQLite and
    PostgreSQL, so no other ftm writer can race in); only if that hits a unique key (a
    writer without the lock), one by one, each in its own savepoint.
    """
    rows = list(rows)
    if not rows:
        return 0
    try:
        with session.begin_nested():
            session.add_all(rows)
        return len(rows)
    except IntegrityError:
        pass  # another writer stored some meanwhile; go row by row
    added = 0
    for row in rows:
        try:
            with session.begin_nested():
                session.add(_fresh_copy(row))
            added += 1
        except IntegrityError:
            pass  # already recorded (another poller or a repeated refresh)
    return added


def _fresh_copy(row: object) -> object:
    """A new pending object with ``row``'s column values (its id left to the database):
    rows from a rolled-back savepoint cannot simply be added again."""
    from sqlalchemy import inspect

    mapper = inspect(type(row))
    values = {
        a.key: getattr(row, a.key)
        for a in mapper.column_attrs
        if not any(c.primary_key for c in a.columns)
    }
    return type(row)(**values)


def _stored_id(job: Job) -> int:
    """The job's primary key; progress is only ever recorded for a job already stored."""
    if job.id is None:
        raise ValueError(f"job {job.uid} has no id yet: add and flush it before recording")
    return job.id


def record_events(session: Session, job: Job, events: Iterable[EventInfo]) -> int:
    """Store events not yet stored (by provider event id). Returns how many were new."""
    events = list(events)
    if not events:
        return 0
    known = set(
        session.scalars(
            select(col(JobEvent.provider_event_id)).where(
                col(JobEvent.job_id) == job.id,
                col(JobEvent.provider_event_id).in_([e.id for e in events]),
            )
        )
    )
    fresh = [
        JobEvent(
            job_id=_stored_id(job),
            provider_event_id=e.id,
            created_at=e.created_at,
            level=e.level,
            type=e.type,
            message=e.message,
            data=e.data,
        )
        for e in events
        if e.id not in known
    ]
    return _insert_ignoring_duplicates(session, fresh)


def record_metrics(session: Session, job: Job, points: Iterable[MetricInfo]) -> int:
    """Store metric points; a point for a step already stored fills in its empty fields."""
    merged: dict[int, dict] = {}
    for p in points:  # several points for one step (events and a result file): merge
        fields = _fields(p)
        into = merged.setdefault(p.step, fields)
        for name, value in fields.items():
            if into.get(name) is None and value is not None:
                into[name] = value
    if not merged:
        return 0
    existing = {
        m.step: m
        for m in session.scalars(
            select(MetricPoint).where(
                col(MetricPoint.job_id) == job.id, col(MetricPoint.step).in_(list(merged))
            )
        )
    }
    for step, fields in merged.items():
        row = existing.get(step)
        if row is None:
            continue
        for name, value in fields.items():
            if value is not None and getattr(row, name) is None:
                setattr(row, name, value)
        session.add(row)
    return _insert_ignoring_duplicates(
        session,
        [
            MetricPoint(job_id=_stored_id(job), **fields)
            for step, fields in merged.items()
            if step not in existing
        ],
    )


def _fields(p: MetricInfo) -> dict:
    return {
        "step": p.step,
        "train_loss": p.train_loss,
        "eval_loss": p.eval_loss,
        "train_accuracy": p.train_accuracy,
        "eval_accuracy": p.eval_accuracy,
        "learning_rate": p.learning_rate,
        "grad_norm": p.grad_norm,
        "tokens_per_second": p.tokens_per_second,
    }


def record_checkpoints(session: Session, job: Job, checkpoints: Iterable[CheckpointInfo]) -> int:
    rows = [
        Checkpoint(
            job_id=_stored_id(job),
            provider_checkpoint_id=c.id,
            step=c.step,
            model_ref=c.model_ref,
            metrics=c.metrics,
            created_at=c.created_at or datetime.now(UTC),
        )
        for c in checkpoints
    ]
    known = set(
        session.scalars(
            select(col(Checkpoint.step)).where(
                col(Checkpoint.job_id) == job.id, col(Checkpoint.step).in_([r.step for r in rows])
            )
        )
    )
    return _insert_ignoring_duplicates(session, [r for r in rows if r.step not in known])


def record_artifacts(session: Session, job: Job, artifacts: Iterable[ArtifactInfo]) -> int:
    known = {
        (kind, uri)
        for kind, uri in session.execute(
            select(col(Artifact.kind), col(Artifact.uri)).where(col(Artifact.job_id) == job.id)
        )
    }
    rows = [
        Artifact(job_id=_stored_id(job), kind=a.kind, uri=a.uri, meta=a.meta)
        for a in artifacts
        if (a.kind, a.uri) not in known
    ]
    session.add_all(rows)
    return len(rows)


def add_local_event(
    session: Session,
    job: Job,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict | None = None,
    key: str | None = None,
) -> bool:
    """Record an event that ftm itself raises (stall warning, worker death...).

    ``key`` makes it idempotent: the same key is recorded once per job.
    """
    now = utcnow()
    event = EventInfo(
        id=f"ftm:{key}" if key else f"ftm:{now.timestamp():.6f}",
        created_at=now,
        message=message,
        level=level,
        type=type,
        data=data,
    )
    return record_events(session, job, [event]) == 1
