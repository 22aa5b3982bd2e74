"""Two pollers in two processes on one database (SQLite or PostgreSQL, whichever the
suite runs on) against the OpenAI emulator: a lost create is sent again once, not once
per poller, and every event of every job is recorded once, none lost.

The race is real: both processes start their first cycle at one instant (a shared start
file), each past the grace window of every lost create, and claim the resends at once.
Several jobs, so that a missing lock loses the race on at least one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest
from sqlalchemy import func, select

from app.jobs.launch import LaunchUnconfirmed, launch_job
from app.jobs.providers import make_provider
from db.engine import read_session
from db.models import Job, JobEvent
from providers.errors import ProviderError
from tests.conftest import REPO_ROOT
from tests.jobs.conftest import MODEL, make_dataset

JOBS = 2
GRACE_S = 300


def _launch_lost(engine, name: str) -> tuple[int, str]:
    """A launch whose create never reached the service (timed out on every attempt)."""
    provider = make_provider("openai", engine=engine)

    def create_lost(spec):
        raise ProviderError("timed out on every attempt", code="create_unconfirmed", retryable=True)

    provider.create = create_lost
    with pytest.raises(LaunchUnconfirmed):
        launch_job("openai", "toy", MODEL, provider=provider, name=name)
    with read_session(engine) as s:
        job = s.scalars(select(Job).where(Job.name == name)).one()
    return job.id, job.uid


def _created_at_emulator(sandbox, uid: str) -> int:
    return sum(j.metadata.get("ftm_job_id") == uid for j in sandbox.state.jobs.values())


def test_two_poller_processes_send_a_lost_create_once_and_record_each_event_once(
    engine, sandbox, tmp_path
):
    make_dataset(engine, tmp_path, n_train=10, n_val=2)  # few steps: a short run
    launched = [_launch_lost(engine, f"lost-{i}") for i in range(JOBS)]
    ids = [str(job_id) for job_id, _ in launched]
    go = tmp_path / "go"
    pollers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.poller_process", str(go), *ids]
            + ["--ahead", str(GRACE_S + 1), "--grace", str(GRACE_S)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for p in pollers:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        outputs = [p.communicate(timeout=120) for p in pollers]
    finally:
        for p in pollers:
            p.kill()
    reports = []
    for p, (out, err) in zip(pollers, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))

    # each lost create sent again exactly once, by one of the two
    assert [_created_at_emulator(sandbox, uid) for _, uid in launched] == [1] * JOBS
    client = openai.OpenAI(base_url=sandbox.base_url, api_key="sk-sandbox", max_retries=0)
    with read_session(engine) as s:
        for job_id, _ in launched:
            job = s.get(Job, job_id)
            assert job.status == "succeeded", (job.status, job.error)
            remote = {e.id for e in client.fine_tuning.jobs.list_events(job.remote_id)}
            stored = s.scalars(
                select(JobEvent.provider_event_id).where(JobEvent.job_id == job_id)
            ).all()
            assert len(stored) == len(set(stored))  # none twice
            assert {e for e in stored if not e.startswith("ftm:")} == remote  # none lost
            assert "ftm:resend:1" in stored and "ftm:resend:2" not in stored
        provider_events = s.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(~JobEvent.provider_event_id.startswith("ftm:"))
        )
    # each event recorded by exactly one poller: what they say they added is what is stored
    assert sum(r["events_recorded"] for r in reports) == provider_events > 0
    assert all(r["cycles"] > 0 for r in reports)
