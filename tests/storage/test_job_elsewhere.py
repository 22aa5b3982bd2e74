"""A local job in a shared storage root may run on a teammate's machine: only that
machine judges whether its worker died; elsewhere its status file is the truth, and a
cancel is the stop request the worker reads."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from db.storage import Storage
from providers.local.jobdir import JobDir
from providers.local.provider import LocalProvider
from providers.types import JobStatus

UID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def shared_job(tmp_path):
    """A running job's directory whose worker pid is not a process of this machine."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    def make(host: str) -> tuple[LocalProvider, JobDir]:
        store = Storage(root=str(tmp_path / "team-root"))
        job = JobDir(store.area("jobs") / UID)
        job.path.mkdir(parents=True)
        job.write_config({"job_uid": UID, "hp": {"method": "sft"}, "base_model": "m", "host": host})
        job.write_status(status="running", step=3, total_steps=10)
        job.write_pid(gone.pid)
        return LocalProvider(database_url="", storage=store), job

    return make


def test_a_job_running_on_another_machine_is_not_declared_dead_here(shared_job):
    provider, job = shared_job("teammates-box")
    remote = provider.refresh(f"jobs/{UID}").job  # the reference the database keeps
    assert remote.status == JobStatus.RUNNING and remote.step == 3
    provider.cancel(f"jobs/{UID}")
    assert job.stop_requested()


def test_a_job_of_this_machine_whose_worker_is_gone_is_failed(shared_job):
    provider, _ = shared_job(socket.gethostname())
    remote = provider.refresh(f"jobs/{UID}").job
    assert remote.status == JobStatus.FAILED and remote.error.code == "worker_died"
