"""`ftm jobs import`: bring in jobs created elsewhere (the web dashboard, other scripts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import col, select

from app.jobs.actions import refresh_job
from app.jobs.providers import make_provider
from app.jobs.tracking import stored_remote
from db import repository
from db.engine import write_session
from db.models import Job
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import JobStatus


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    """ids of the new job rows."""
    already_known: int = 0
    reattached: list[int] = field(default_factory=list)
    """ids of ftm's own launches whose lost create answer this import found."""
    refresh_errors: list[str] = field(default_factory=list)


def import_jobs(
    provider_name: str,
    *,
    limit: int = 100,
    engine: Engine | None = None,
    provider: Provider | None = None,
    refresh: bool = True,
) -> ImportReport:
    """Add a row for every job the provider has that ftm does not track yet, then refresh
    each new one (events, checkpoints, metrics). A job ftm launched itself (matched by
    remote id, by its ``ftm_job_id`` metadata, or by the uid prefix it carries) is not
    imported twice: a launch whose create answer was lost gets its remote job back."""
    if engine is None:
        from app.database import get_engine

        engine = get_engine()
    provider = provider or make_provider(provider_name, engine=engine)
    remote_jobs = provider.list_remote_jobs(limit=limit)
    report = ImportReport()
    for remote in map(stored_remote, remote_jobs):
        uid = (remote.metadata or {}).get("ftm_job_id")
        with write_session(engine) as session:
            known = session.scalars(
                select(Job).where(
                    (Job.provider == provider_name) & (Job.remote_id == remote.remote_id)
                )
            ).first()
            if known is None and (uid or remote.ftm_uid_prefix):
                known = _own_launch(session, provider_name, uid, remote.ftm_uid_prefix)
                if known is not None and known.remote_id is None:
                    _attach_lost_launch(session, known, remote, provider.display_name)
                    report.reattached.append(known.id)
            if known is not None:
                report.already_known += 1
                continue
            hp = dict(remote.hyperparameters or {})
            method = hp.pop("method", "supervised")
            job = Job(
                name=f"imported {remote.remote_id}",
                provider=provider_name,
                remote_id=remote.remote_id,
                base_model=remote.base_model or "unknown",
                method=method,
                hyperparameters=hp or None,
                spec={"imported": True, "imported_at": datetime.now(UTC).isoformat()},
                simulated=provider.simulated,
                created_at=remote.created_at or datetime.now(UTC),
            )
            session.add(job)
            session.flush()
            repository.add_local_event(
                session, job, f"Imported from {provider.display_name}", key="imported"
            )
            report.imported.append(job.id)
    if refresh:
        for job_id in report.imported + report.reattached:
            try:
                refresh_job(job_id, engine=engine, provider=provider)
            except ProviderError as exc:
                report.refresh_errors.append(f"job {job_id}: {exc.message}")
    return report


def _own_launch(session, provider_name: str, uid: str | None, prefix: str | None) -> Job | None:
    """The row ftm launched this job from: by its full uid, else (a provider that carries
    only the start of it, `RemoteJob.ftm_uid_prefix`) the one launch on this provider
    still without a remote job whose uid starts with that prefix."""
    if uid:
        return session.scalars(select(Job).where(Job.uid == uid)).first()
    candidates = session.scalars(
        select(Job).where(
            (Job.provider == provider_name)
            & col(Job.remote_id).is_(None)
            & col(Job.uid).startswith(str(prefix), autoescape=True)
        )
    ).all()
    return candidates[0] if len(candidates) == 1 else None


def _attach_lost_launch(session, job: Job, remote, provider_label: str) -> None:
    """Our own launch whose create answer was lost: give the row its remote job. A row the
    poller had already given up on (``not_created``) is reopened, so it is tracked again."""
    job.remote_id = remote.remote_id
    if JobStatus(job.status) == JobStatus.FAILED and (job.error or {}).get("code") == "not_created":
        repository.reopen_for_resume(
            session,
            job,
            f"Found at {provider_label} as {remote.remote_id}: the launch was created after all",
            key="reconciled-late",
        )
    elif (job.error or {}).get("code") == "create_unconfirmed":
        job.error = None
    session.add(job)
