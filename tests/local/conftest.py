"""Fixtures for the local provider's tests: the shared tiny model, a provider bound to the
test's FTM_HOME, and job rows in the test's database."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from app.database import get_engine
from app.settings import get_settings
from db.engine import read_session, write_session
from db.models import Job
from providers.local import LocalProvider
from providers.types import JobSpec, RemoteJob
from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)


@pytest.fixture
def provider(ftm_home: Path) -> LocalProvider:
    s = get_settings()
    get_engine()  # create and migrate the test's database before workers write to it
    return LocalProvider(jobs_dir=s.jobs_dir, database_url=s.resolved_database_url)


def new_job_row(spec_name: str, base_model: str, method: str) -> str:
    """Insert a pending job row the way `launch_job` does; returns its uid."""
    uid = uuid.uuid4().hex
    with write_session(get_engine()) as s:
        s.add(Job(uid=uid, name=spec_name, provider="local", base_model=base_model, method=method))
    return uid


def job_row(uid: str, status: str | None = None, timeout: float = 30.0) -> Job:
    """The job's row; with ``status``, once it has that status (up to ``timeout``). The
    worker writes its status file before the database (the file is the truth a poller
    reads), so a test that saw the file end may read the row a moment early."""
    import time

    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while True:
        with read_session(get_engine()) as s:
            row = s.scalars(select(Job).where(Job.uid == uid)).one()
        if status is None or row.status == status or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def launch(
    provider: LocalProvider,
    base_model: Path,
    train: Path,
    validation: Path | None,
    method: str = "lora",
    **options,
) -> tuple[str, RemoteJob]:
    uid = new_job_row("test", str(base_model), method)
    options.setdefault("torch_threads", 2)
    options.setdefault("device", "cpu")  # the same run, and assertions, on a machine with a GPU
    spec = JobSpec(
        name="test",
        base_model=str(base_model),
        train_path=str(train),
        validation_path=str(validation) if validation else None,
        method=method,
        ftm_job_uid=uid,
        options=options,
    )
    spec = provider.prepare(spec)
    return uid, provider.create(spec)


def wait_until(fn, timeout: float = 120.0, every: float = 0.2):
    """Poll ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_terminal(provider: LocalProvider, remote_id: str, timeout: float = 180.0) -> RemoteJob:
    def done():
        job = provider.refresh(remote_id).job
        return job if job.status.is_terminal else None

    return wait_until(done, timeout, every=0.5)
