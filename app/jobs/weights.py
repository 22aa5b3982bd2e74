"""A hosted job's weights on this machine: downloaded through its provider
(`Provider.download_weights`), recorded as the job's artifact (kind ``adapter`` or
``merged``, the local directory as its uri), and found again by `ftm eval --local-weights`
and `ftm local merge`. Used by the CLI and the TUI alike.

Provider-neutral: what a provider can download is its ``capabilities.downloadable_weights``,
and the weights are evaluated through whichever installed provider declares
``capabilities.loads_local_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.jobs.providers import capabilities_of, make_provider, registry
from app.jobs.queries import find_job
from db.engine import read_session, write_session
from db.models import Artifact, Job
from providers import weights_layout
from providers.base import Provider
from providers.types import JobStatus

LOCAL_KINDS = weights_layout.KINDS


class WeightsError(ValueError):
    """The weights cannot be downloaded or used as asked; the message says why and what
    to do."""


@dataclass(frozen=True)
class LocalWeights:
    """Weights of a job on this machine."""

    job_id: int
    kind: str
    path: Path
    meta: dict[str, Any]

    @property
    def base_model(self) -> str | None:
        """What the weights load onto: an adapter's base as its config names it now (a
        local directory once pointed there), else what the download recorded."""
        if self.kind == "adapter":
            config = self.path / weights_layout.ADAPTER_CONFIG
            if config.is_file():
                import json

                return json.loads(config.read_text()).get("base_model_name_or_path")
        return self.meta.get("base_model")


def destination(jobs_dir: Path, job: Job, kind: str) -> Path:
    """Where a job's downloaded weights go: its job directory (``<jobs_dir>/<uid>/``, the
    local provider's layout), ``adapter/`` or ``merged/`` in it."""
    return Path(jobs_dir) / job.uid / kind


def download(
    ref: str | int,
    kind: str = "adapter",
    *,
    base_model: str | None = None,
    engine: Engine | None = None,
    provider: Provider | None = None,
    jobs_dir: Path | None = None,
) -> LocalWeights:
    """Download job ``ref``'s weights of ``kind`` into its job directory and record them.
    ``base_model``: a local directory (or hub name) the adapter should load onto, when
    the provider's name for its base does not load here.

    Raises:
        WeightsError: the provider offers no such download, or the job has not succeeded.
        ProviderError: the download itself failed (nothing was written).
    """
    if engine is None:
        from app.database import get_engine

        engine = get_engine()
    if jobs_dir is None:
        from app.settings import get_settings

        jobs_dir = get_settings().jobs_dir
    with read_session(engine) as session:
        job = find_job(session, ref)
    offered = capabilities_of(job.provider).downloadable_weights
    if kind not in offered:
        what = f"it offers: {', '.join(offered)}" if offered else "it offers no download"
        raise WeightsError(
            f"job {job.id} ran on {job.provider}, which has no {kind} weights to download "
            f"({what}); evaluate it through its provider instead: ftm eval --job {job.id}"
        )
    if job.status != JobStatus.SUCCEEDED or not job.remote_id:
        raise WeightsError(
            f"job {job.id} is {job.status}: its weights can be downloaded once it has "
            f"succeeded (follow it with: ftm watch)"
        )
    provider = provider or make_provider(job.provider, engine=engine)
    dest = destination(jobs_dir, job, kind)
    artifact = provider.download_weights(job.remote_id, dest, kind)
    meta = dict(artifact.meta or {})
    meta["provider"] = job.provider
    if base_model and kind == "adapter":
        meta["provider_base_model"] = weights_layout.point_adapter_at_base(dest, base_model)
    from app.settings import get_settings

    store = get_settings().file_store
    store.publish(dest)  # a URL root gets its copy; the database names it by reference
    with write_session(engine) as session:
        _record(session, job, kind, store.ref_for(dest) or str(dest), meta)
    return LocalWeights(job.id or 0, kind, dest, meta)


def _record(session: Session, job: Job, kind: str, uri: str, meta: dict[str, Any]) -> None:
    """One artifact row per job, kind and place: a new download of the same weights
    updates what is known about them."""
    row = session.exec(
        select(Artifact).where(
            col(Artifact.job_id) == job.id, col(Artifact.kind) == kind, col(Artifact.uri) == uri
        )
    ).first()
    if row is None:
        row = Artifact(job_id=job.id or 0, kind=kind, uri=uri)
    row.meta = meta
    session.add(row)


def local_weights(session: Session, job: Job, kind: str | None = None) -> LocalWeights | None:
    """The newest weights of ``job`` (of ``kind``, else an adapter before a merged model)
    that are on this machine now."""
    kinds = [kind] if kind else list(LOCAL_KINDS)
    rows = session.exec(
        select(Artifact)
        .where(col(Artifact.job_id) == job.id, col(Artifact.kind).in_(kinds))
        .order_by(col(Artifact.created_at).desc(), col(Artifact.id).desc())
    ).all()
    from app.settings import get_settings
    from db.storage import StorageMissing

    store = get_settings().file_store
    for wanted in kinds:
        for row in rows:
            try:
                path = store.local_path(row.uri)
            except StorageMissing:  # not under this machine's root: not here
                continue
            if row.kind == wanted and path.is_dir():
                return LocalWeights(job.id or 0, row.kind, path, dict(row.meta or {}))
    return None


def local_loader() -> str:
    """The installed provider that evaluates weights from a local directory."""
    for name in registry().names():
        if capabilities_of(name).loads_local_weights:
            return name
    raise WeightsError(
        "no installed provider loads weights from a local directory; install ftm's local "
        "extra (pip install 'ftm[local]') to evaluate downloaded weights"
    )
