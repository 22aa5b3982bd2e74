"""Read jobs and everything recorded about them (for the CLI and the TUI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlmodel import Session, select

from db.models import Artifact, Checkpoint, Dataset, Job, JobEvent, MetricPoint
from providers.types import TERMINAL_STATUSES, JobStatus


class JobNotFound(LookupError):
    pass


def find_job(session: Session, ref: str | int) -> Job:
    """A job by its id, its uid (or a unique prefix of at least 6 characters), or its
    provider's remote id."""
    text = str(ref).strip()
    if text.isdigit():
        job = session.get(Job, int(text))
        if job is not None:
            return job
    job = session.scalars(select(Job).where((Job.remote_id == text) | (Job.uid == text))).first()
    if job is None and len(text) >= 6:
        matches = list(session.scalars(select(Job).where(Job.uid.startswith(text)).limit(2)))
        if len(matches) == 1:
            job = matches[0]
    if job is None:
        raise JobNotFound(
            f"no job {text!r}: give a job id from `ftm jobs list`, its uid, or "
            "the provider's job id"
        )
    return job


JOB_ORDERS = ("age", "status", "name", "provider")
"""The orders `list_jobs` knows (the Jobs tab cycles through them)."""


def _listed(
    query,
    *,
    active_only: bool = False,
    provider: str | None = None,
    limit: int = 200,
    search: str | None = None,
    order: str = "age",
):
    """``query`` (over `Job`) filtered, ordered and limited as `list_jobs` documents."""
    if order not in JOB_ORDERS:
        raise ValueError(f"unknown job order {order!r}; use one of: {', '.join(JOB_ORDERS)}")
    keys = {"age": [], "status": [Job.status], "name": [Job.name], "provider": [Job.provider]}
    query = query.order_by(*keys[order], Job.id.desc()).limit(limit)
    if search and search.strip():
        text = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{text}%"  # literal: a "_" or "%" typed by the user is not a wildcard
        query = query.where(
            Job.name.ilike(pattern, escape="\\")
            | Job.provider.ilike(pattern, escape="\\")
            | Job.base_model.ilike(pattern, escape="\\")
            | Job.status.ilike(pattern, escape="\\")
        )
    if active_only:
        query = query.where(
            Job.status.in_([s.value for s in JobStatus if s not in TERMINAL_STATUSES])
        )
    if provider:
        query = query.where(Job.provider == provider)
    return query


def list_jobs(
    session: Session,
    *,
    active_only: bool = False,
    provider: str | None = None,
    limit: int = 200,
    search: str | None = None,
    order: str = "age",
) -> list[Job]:
    """Jobs, newest first (or by ``order``: one of `JOB_ORDERS`, newest first within).

    ``search`` keeps the jobs whose name, provider, base model or status contains it
    (case-insensitive); it is applied in SQL so it finds jobs beyond ``limit``.
    """
    return list(
        session.scalars(
            _listed(
                select(Job),
                active_only=active_only,
                provider=provider,
                limit=limit,
                search=search,
                order=order,
            )
        )
    )


class JobRow(NamedTuple):
    """What a table of jobs shows of one job: plain values, compared as a whole to tell
    whether a row changed since it was last shown."""

    id: int
    name: str
    status: str
    stalled: bool
    step: int | None
    total_steps: int | None
    train_loss: float | None
    eval_loss: float | None
    estimated_cost_usd: float | None
    actual_cost_usd: float | None
    created_at: datetime | None
    provider: str
    simulated: bool
    base_model: str
    dataset: str | None
    """The dataset's name."""
    remote_id: str | None


_ROW_COLUMNS = (
    Job.id,
    Job.name,
    Job.status,
    Job.stalled,
    Job.step,
    Job.total_steps,
    Job.train_loss,
    Job.eval_loss,
    Job.estimated_cost_usd,
    Job.actual_cost_usd,
    Job.created_at,
    Job.provider,
    Job.simulated,
    Job.base_model,
    Dataset.name,
    Job.remote_id,
)


def job_rows(
    session: Session, *, limit: int = 200, search: str | None = None, order: str = "age"
) -> list[JobRow]:
    """The rows of `list_jobs` as the jobs table shows them, in one query: only the
    columns shown (no JSON columns decoded, no ORM objects), the dataset's name joined,
    the latest step and losses from the job's own columns (kept current by each refresh,
    see `app.jobs.tracking`), never from the metric points."""
    query = _listed(
        select(*_ROW_COLUMNS).outerjoin(Dataset, Dataset.id == Job.dataset_id),
        limit=limit,
        search=search,
        order=order,
    )
    return [JobRow(*r) for r in session.exec(query)]


@dataclass
class JobDetail:
    job: Job
    events: list[JobEvent] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)


def dataset_names(session: Session, ids: set[int | None]) -> dict[int, str]:
    """Names of the datasets with these ids (one query, for a table of jobs)."""
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return dict(session.exec(select(Dataset.id, Dataset.name).where(Dataset.id.in_(wanted))).all())


def job_detail(session: Session, ref: str | int, *, events_limit: int = 500) -> JobDetail:
    job = find_job(session, ref)
    events = list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job.id)
            .order_by(JobEvent.created_at.desc(), JobEvent.id.desc())
            .limit(events_limit)
        )
    )
    events.reverse()
    return JobDetail(
        job=job,
        events=events,
        metrics=list(
            session.scalars(
                select(MetricPoint).where(MetricPoint.job_id == job.id).order_by(MetricPoint.step)
            )
        ),
        checkpoints=list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.step)
            )
        ),
        # In the order they were recorded: without ORDER BY, PostgreSQL returns rows in
        # storage order, where an updated row moves to the end.
        artifacts=list(
            session.scalars(select(Artifact).where(Artifact.job_id == job.id).order_by(Artifact.id))
        ),
    )


def progress_fraction(job: Job | JobRow) -> float | None:
    """0..1 from steps, 1 when succeeded, None when unknown."""
    if job.status == JobStatus.SUCCEEDED:
        return 1.0
    if job.step is not None and job.total_steps:
        return min(1.0, job.step / job.total_steps)
    return None


def job_summary(job: Job) -> dict:
    """A JSON-ready summary (``ftm jobs list --json``)."""
    return {
        "id": job.id,
        "uid": job.uid,
        "name": job.name,
        "provider": job.provider,
        "remote_id": job.remote_id,
        "base_model": job.base_model,
        "method": job.method,
        "status": job.status,
        "simulated": job.simulated,
        "step": job.step,
        "total_steps": job.total_steps,
        "train_loss": job.train_loss,
        "eval_loss": job.eval_loss,
        "fine_tuned_model": job.fine_tuned_model,
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "stalled": job.stalled,
        "dataset_id": job.dataset_id,
        "hyperparameters": job.hyperparameters,
        "estimated_cost_usd": job.estimated_cost_usd,
        "actual_cost_usd": job.actual_cost_usd,
        "billed_usd": job.billed_usd,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
