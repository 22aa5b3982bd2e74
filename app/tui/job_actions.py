"""Which actions a job allows right now, and why not when it does not (for the job detail).

Pure functions of the job row and its provider's capabilities, so the detail screen can
grey out an action in its summary and refuse the key with the same sentence.
"""

from __future__ import annotations

from functools import lru_cache

from providers.base import Capabilities
from providers.types import JobStatus

ACTIONS = ("cancel", "pause", "resume", "evaluate", "promote")


@lru_cache(maxsize=32)
def provider_capabilities(provider: str) -> Capabilities | None:
    """The provider class's capabilities (no instance: that may need an API key).
    Cached: the detail screen asks on every reload, and discovery scans entry points."""
    from app.jobs.providers import registry

    try:
        return registry().get(provider).capabilities
    except KeyError:
        return None


def why_not(action: str, job, caps: Capabilities | None) -> str | None:
    """None when ``action`` can be done on ``job`` now, else the reason (a sentence)."""
    status = JobStatus(job.status)
    if action == "cancel":
        if status.is_terminal:
            return f"job {job.id} already ended ({status}); there is nothing to cancel"
        if job.remote_id is None:
            return f"job {job.id} has no provider job yet ({status}); wait for the launch"
        return None
    if action == "pause":
        if caps is None or not caps.can_pause:
            return f"{job.provider} cannot pause jobs; cancel the job or let it finish"
        if status == JobStatus.PAUSED:
            return f"job {job.id} is already paused; press u to resume it"
        if status not in (JobStatus.RUNNING, JobStatus.QUEUED):
            return f"only a running or queued job can be paused (job {job.id} is {status})"
        return None
    if action == "resume":
        if status == JobStatus.PAUSED:
            return None
        if status.can_resume_from:
            if caps is None or not caps.can_resume_from_checkpoint:
                return (
                    f"{job.provider} cannot continue a stopped job from a checkpoint; "
                    "launch a new job instead"
                )
            if job.remote_id is None:
                return f"job {job.id} never started; launch it again"
            return None
        if caps is not None and caps.can_pause:
            return f"only a paused job can be resumed (job {job.id} is {status})"
        return (
            "only a failed or cancelled job can be continued from its checkpoint on "
            f"{job.provider} (job {job.id} is {status})"
        )
    if action in ("evaluate", "promote"):
        if status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
            return f"job {job.id} has no trained model yet ({status}); wait until it succeeds"
        return None
    raise ValueError(f"unknown job action {action!r}")


def latest_eval_run(engine, job_id: int):
    """The newest finished evaluation of this job's model (None if never evaluated)."""
    from sqlmodel import select

    from db.engine import read_session
    from db.models import EvalRun

    with read_session(engine) as session:
        return session.scalars(
            select(EvalRun)
            .where(
                EvalRun.job_id == job_id,
                EvalRun.candidate_kind.in_(["fine_tuned", "checkpoint"]),
                EvalRun.status == "succeeded",
            )
            .order_by(EvalRun.id.desc())
        ).first()
