"""Cancel, pause and resume a job through its provider, and refresh one job now."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from app.jobs.providers import make_provider
from app.jobs.queries import find_job
from app.jobs.tracking import Applied, apply_refresh, apply_remote
from db import repository
from db.engine import read_session, write_session
from db.models import Job
from providers.base import Provider
from providers.errors import ProviderError, UnsupportedOperation
from providers.types import JobStatus


class JobActionError(ValueError):
    """The action cannot be done on this job; the message says why."""


def _engine(engine: Engine | None) -> Engine:
    if engine is None:
        from app.database import get_engine

        return get_engine()
    return engine


def _load(engine: Engine, ref: str | int) -> Job:
    with read_session(engine) as session:
        return find_job(session, ref)


def _act(
    verb: str, ref: str | int, *, engine: Engine | None = None, provider: Provider | None = None
) -> Job:
    engine = _engine(engine)
    job = _load(engine, ref)
    if JobStatus(job.status).is_terminal:
        raise JobActionError(f"job {job.id} already ended ({job.status}); nothing to {verb}")
    if job.remote_id is None:
        raise JobActionError(
            f"job {job.id} has no provider job yet (status {job.status}); "
            "wait for the launch to finish, or for `ftm watch` (or the TUI) to find it"
        )
    provider = provider or make_provider(job.provider, engine=engine)
    try:
        remote = getattr(provider, verb)(job.remote_id)
    except UnsupportedOperation as exc:
        raise JobActionError(exc.message) from None
    except ProviderError as exc:
        raise JobActionError(f"could not {verb} job {job.id}: {exc.message}") from None
    with write_session(engine) as session:
        row = repository.get_job(session, job.id)
        apply_remote(session, row, remote, now=datetime.now(UTC), allow_terminal=False)
        repository.add_local_event(
            session,
            row,
            f"{verb.capitalize()} requested by the user",
            key=f"{verb}:{datetime.now(UTC).timestamp():.3f}",
        )
    if remote.status.is_terminal:
        # the job ended: record its last events and metrics with the end itself (the poller
        # does it on its next cycle if the provider cannot be reached now)
        try:
            refresh_job(job.id, engine=engine, provider=provider)
        except ProviderError:
            pass
    with read_session(engine) as session:
        return repository.get_job(session, job.id)


def cancel_job(ref: str | int, **kw) -> Job:
    return _act("cancel", ref, **kw)


def pause_job(ref: str | int, **kw) -> Job:
    return _act("pause", ref, **kw)


def resume_job(
    ref: str | int, *, engine: Engine | None = None, provider: Provider | None = None
) -> Job:
    """Resume a paused job, or continue a failed or cancelled one from its last checkpoint
    where the provider can (``capabilities.can_resume_from_checkpoint``, e.g. local
    training)."""
    engine = _engine(engine)
    job = _load(engine, ref)
    if JobStatus(job.status).can_resume_from and job.remote_id is not None:
        provider = provider or make_provider(job.provider, engine=engine)
        if provider.capabilities.can_resume_from_checkpoint:
            return _resume_from_checkpoint(engine, job, provider)
    return _act("resume", ref, engine=engine, provider=provider)


def _resume_from_checkpoint(engine: Engine, job: Job, provider: Provider) -> Job:
    try:
        remote = provider.resume_from_checkpoint(job.remote_id)
    except UnsupportedOperation as exc:
        raise JobActionError(exc.message) from None
    except ProviderError as exc:
        raise JobActionError(f"could not resume job {job.id}: {exc.message}") from None
    with write_session(engine) as session:
        row = repository.get_job(session, job.id)
        if JobStatus(row.status).can_resume_from:  # the provider did not reopen it itself
            repository.reopen_for_resume(
                session, row, "Resume from the last checkpoint requested by the user"
            )
        apply_remote(session, row, remote, now=datetime.now(UTC), allow_terminal=False)
    with read_session(engine) as session:
        return repository.get_job(session, job.id)


def refresh_job(
    ref: str | int, *, engine: Engine | None = None, provider: Provider | None = None
) -> Applied:
    """Refresh one job now (same recording as the poller)."""
    engine = _engine(engine)
    job = _load(engine, ref)
    if job.remote_id is None:
        raise JobActionError(f"job {job.id} has no provider job to refresh")
    provider = provider or make_provider(job.provider, engine=engine)
    refresh = provider.refresh(job.remote_id, job.events_cursor)
    from app.settings import get_settings

    with write_session(engine) as session:
        row = repository.get_job(session, job.id)
        return apply_refresh(
            session, row, refresh, stall_after_s=get_settings().poller.stall_after_s
        )
