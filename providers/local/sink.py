"""Where a worker's progress goes: the job's row (and its events, metric points,
checkpoints, artifacts and a throughput sample) in ftm's database, through short write
transactions, and ``status.json`` in the job directory.

The database part is optional: without a database URL, or when no job row carries the
uid (a bench, a direct provider test), only the status file is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from db.engine import make_engine, write_session
from db.models import Job, ThroughputSample
from db.repository import (
    record_artifacts,
    record_checkpoints,
    record_events,
    record_metrics,
    set_status,
)
from db.storage import Storage, storage_from_env
from providers.local.jobdir import DATABASE_URL_ENV, JobDir
from providers.types import Artifact, Checkpoint, JobEvent, JobStatus, MetricPoint

log = logging.getLogger("ftm.local.worker")


def worker_database_url(config: dict[str, Any]) -> str | None:
    """The database a worker reports to: None when its job reports to status.json only
    (no ``db_url`` in config.json), else the URL its provider put in its environment
    (config.json holds it masked, see `DATABASE_URL_ENV`)."""
    if not config.get("db_url"):
        return None
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    if "***" in config["db_url"]:
        log.warning(
            "no %s in the worker's environment (config.json holds the database URL without "
            "its password): progress goes to status.json only",
            DATABASE_URL_ENV,
        )
        return None
    return config["db_url"]  # a URL without a password (SQLite) is complete as written


def _now() -> datetime:
    return datetime.now(UTC)


def job_storage(job_dir: JobDir) -> Storage:
    """The storage root the job was launched with (its config), else the environment's."""
    config = job_dir.read_config() if job_dir.config_path.is_file() else {}
    if config.get("storage_root"):
        cache = config.get("storage_cache")
        return Storage(root=config["storage_root"], cache_dir=Path(cache) if cache else None)
    return storage_from_env()


class ProgressSink:
    """Writes one job's progress. Every method is safe to call when the DB is absent."""

    def __init__(self, job_dir: JobDir, db_url: str | None, job_uid: str, attempt: int = 1):
        self.job_dir = job_dir
        self.uid = job_uid
        self.attempt = attempt
        self.engine = None
        self.status: dict[str, Any] = dict(job_dir.read_status() or {})
        self.storage = job_storage(job_dir)
        if db_url:
            try:
                engine = make_engine(db_url)
                with write_session(engine) as s:
                    found = s.scalars(select(col(Job.id)).where(col(Job.uid) == job_uid)).first()
                if found is None:
                    log.info(
                        "no job row with uid %s in the database: progress goes to status.json only",
                        job_uid,
                    )
                else:
                    self.engine = engine
            except Exception as exc:  # a broken DB must not stop training
                log.warning(
                    "database unavailable (%s): progress goes to status.json only",
                    type(exc).__name__,
                )

    # -- helpers ------------------------------------------------------------------------

    def _update_job(self, fn) -> None:
        if self.engine is None:
            return
        try:
            with write_session(self.engine) as s:
                job = s.scalars(select(Job).where(col(Job.uid) == self.uid)).one()
                fn(s, job)
                s.add(job)
        except Exception as exc:  # keep training; the poller can still read status.json
            log.warning("could not write progress to the database: %s", exc)

    def _write_status(self, **fields: Any) -> None:
        self.status.update(fields, updated_at=_now().isoformat())
        self.job_dir.write_status(**self.status)

    def event(
        self,
        key: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict | None = None,
    ) -> None:
        ev = JobEvent(
            id=f"local:{self.attempt}:{key}",
            created_at=_now(),
            message=message,
            level=level,
            type=type,
            data=data,
        )
        self._update_job(lambda s, job: record_events(s, job, [ev]))

    # -- lifecycle ----------------------------------------------------------------------

    def started(self, pid: int) -> None:
        self._write_status(
            status="running",
            pid=pid,
            attempt=self.attempt,
            started_at=_now().isoformat(),
            error=None,
            finished_at=None,
        )

        def fn(s, job):
            set_status(s, job, JobStatus.RUNNING, strict=False)
            job.job_dir = self.storage.ref_for(self.job_dir.path)
            job.worker_pid = pid
            job.last_progress_at = _now()

        self._update_job(fn)
        self.event("start", f"worker started (pid {pid}, attempt {self.attempt})", type="status")

    def plan(self, message: str, data: dict) -> None:
        self._write_status(plan=data, total_steps=data.get("total_steps"))
        self.event("plan", message, data=data)

    def progress(
        self,
        step: int,
        total: int,
        point: MetricPoint,
        eta_s: float | None,
        tokens_seen: int | None,
    ) -> None:
        self._write_status(step=step, total_steps=total, eta_s=eta_s, trained_tokens=tokens_seen)

        def fn(s, job):
            record_metrics(s, job, [point])
            job.step = step
            job.total_steps = total
            if point.train_loss is not None:
                job.train_loss = point.train_loss
            if point.eval_loss is not None:
                job.eval_loss = point.eval_loss
            if point.tokens_per_second is not None:
                job.tokens_per_second = point.tokens_per_second
            job.eta_s = eta_s
            job.trained_tokens = tokens_seen
            job.last_progress_at = job.updated_at = _now()

        self._update_job(fn)

    def checkpoint(self, step: int, path: str, metrics: dict | None) -> None:
        self._write_status(last_checkpoint=path)
        ck = Checkpoint(
            step=step,
            model_ref=self.storage.ref_for(path) or path,
            id=f"checkpoint-{step}",
            metrics=metrics,
            created_at=_now(),
        )
        self._update_job(lambda s, job: record_checkpoints(s, job, [ck]))
        self.event(
            f"checkpoint-{step}", f"checkpoint saved at step {step}", data={"path": ck.model_ref}
        )

    def finished(
        self,
        status: JobStatus,
        *,
        fine_tuned_model: str | None = None,
        error: dict | None = None,
        artifacts: Sequence[Artifact] = (),
        actual: dict | None = None,
    ) -> None:
        self._write_status(
            status=status.value,
            fine_tuned_model=fine_tuned_model,
            error=error,
            finished_at=_now().isoformat(),
            actual=actual,
            artifacts=[a.__dict__ for a in artifacts],
        )
        # The database names files by their place under the storage root; a URL root gets
        # its copy before the database says the job succeeded.
        for path in dict.fromkeys([fine_tuned_model, *(a.uri for a in artifacts)]):
            if path:
                self.storage.publish(path)
        fine_tuned_model = self.storage.ref_for(fine_tuned_model)
        artifacts = [replace(a, uri=self.storage.ref_for(a.uri) or a.uri) for a in artifacts]

        def fn(s, job):
            record_artifacts(s, job, artifacts)
            if fine_tuned_model:
                job.fine_tuned_model = fine_tuned_model
            if error:
                job.error = error
            if actual:
                job.actual = {**(job.actual or {}), **actual}
            job.eta_s = 0.0 if status == JobStatus.SUCCEEDED else None
            set_status(s, job, status, strict=False)

        self._update_job(fn)
        level = {"succeeded": "info", "cancelled": "warn"}.get(status.value, "error")
        msg = f"job {status.value}" + (f": {error['message']}" if error else "")
        self.event("end", msg, level=level, type="status")

    def throughput(self, sample: dict[str, Any]) -> None:
        def fn(s, job):
            s.add(ThroughputSample(job_id=job.id, **sample))

        self._update_job(fn)
