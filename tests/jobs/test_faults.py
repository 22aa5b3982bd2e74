"""Hundreds of injected faults during create and poll: no duplicate job, no lost job."""

from __future__ import annotations

import asyncio
import time

from sqlmodel import select

from app.jobs.launch import LaunchUnconfirmed, launch_job
from app.jobs.poller import Poller
from app.sandbox.faults import FaultPlan
from app.sandbox.server import SandboxServer
from app.settings import PollerSettings
from db.engine import read_session
from db.models import Job, JobEvent
from tests.jobs.conftest import MODEL, make_dataset

N_JOBS = 40


def _plan() -> FaultPlan:
    plan = FaultPlan(seed=11)
    plan.next(8, "drop_after", "jobs.create")  # the first creates surely lose their answer
    # creation: lost responses after the job was made, refusals, a slow answer that outlives
    # the client's timeout (the server still makes the job)
    plan.add("jobs.create", "drop_after", probability=0.3)
    plan.add("jobs.create", "slow", probability=0.1, delay_s=0.6)
    plan.add("jobs.create", "rate_limit", probability=0.15, retry_after_s=0.01)
    plan.add("jobs.create", "server_error", probability=0.1)
    plan.add("jobs.create", "unavailable", probability=0.1)
    plan.add("jobs.list", "server_error", probability=0.2)
    plan.add("jobs.list", "drop_before", probability=0.1)
    plan.add("files.*", "unavailable", probability=0.1)
    # polling
    for route in ("jobs.retrieve", "jobs.events", "jobs.checkpoints", "files.content"):
        plan.add(route, "rate_limit", probability=0.12, retry_after_s=0.01)
        plan.add(route, "server_error", probability=0.08)
        plan.add(route, "unavailable", probability=0.08)
        plan.add(route, "drop_after", probability=0.05)
    return plan


def test_faults_during_create_and_poll_lose_and_duplicate_nothing(tmp_path, monkeypatch):
    from app import database

    monkeypatch.setenv("FTM_OPENAI__TIMEOUT_S", "0.4")
    with SandboxServer(port=0, seconds_per_step=0.1, seed=3) as sandbox:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", sandbox.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path, n_train=12)
        sandbox.faults = _plan()
        _launch_while_polling(engine, sandbox)


def _launch_while_polling(engine, sandbox) -> None:
    unconfirmed: list[int] = []

    def launch_all() -> None:
        for i in range(N_JOBS):
            try:
                launch_job("openai", "toy", MODEL, suffix=f"f{i}", hyperparameters={"n_epochs": 2})
            except LaunchUnconfirmed as exc:  # allowed: the poller settles it by uid
                unconfirmed.append(exc.job_id)

    # a short grace window: a "slow" create can make its job after the launch's last lookup
    poller = Poller(
        engine,
        settings=PollerSettings(
            concurrency=8, requests_per_second=500, stall_after_s=3600, unconfirmed_grace_s=20
        ),
        backoff_base_s=0.02,
    )

    def all_done() -> bool:
        with read_session(engine) as session:
            statuses = list(session.scalars(select(Job.status)))
        return len(statuses) == N_JOBS and all(
            s in ("succeeded", "failed", "cancelled") for s in statuses
        )

    async def go() -> None:
        launching = asyncio.create_task(asyncio.to_thread(launch_all))
        deadline = time.monotonic() + 300
        while not (launching.done() and all_done()):
            if launching.done() and launching.exception() is not None:
                raise launching.exception()  # a launch failed: that is a bug here
            if time.monotonic() > deadline:
                with read_session(engine) as session:
                    stuck = [
                        (j.id, j.status, j.remote_id, j.error)
                        for j in session.scalars(select(Job))
                        if j.status not in ("succeeded", "failed", "cancelled")
                    ]
                raise AssertionError(
                    f"jobs did not finish: {stuck}; launching done: {launching.done()}"
                )
            await poller.run_once()
            await asyncio.sleep(0.02)
        await launching  # re-raise anything unexpected (a LaunchFailed would fail here)

    asyncio.run(go())
    poller.close()

    create_faults = sum(
        n for (route, _), n in sandbox.faults.injected.items() if route == "jobs.create"
    )
    total = sandbox.faults.total_injected()
    print(
        f"faults injected: {total} (create: {create_faults}); "
        f"by kind: {dict(sandbox.faults.injected)}; unconfirmed launches: {len(unconfirmed)}"
    )
    assert total >= 200 and create_faults >= 15
    with read_session(engine) as session:
        rows = list(session.scalars(select(Job)))
        assert len(rows) == N_JOBS
        server_jobs = sandbox.state.jobs
        # zero duplicates: one remote job per ftm job, tagged with its uid
        uids = [j.metadata["ftm_job_id"] for j in server_jobs.values()]
        assert len(uids) == len(set(uids)) == len(server_jobs) == N_JOBS
        # zero lost: every remote job is tracked, and every ftm job has its remote job
        assert {r.remote_id for r in rows} == set(server_jobs)
        assert {r.uid for r in rows} == set(uids)
        for r in rows:
            assert r.status == "succeeded", (r.id, r.status, r.error)
            assert server_jobs[r.remote_id].metadata["ftm_job_id"] == r.uid
            recorded = set(
                session.scalars(
                    select(JobEvent.provider_event_id).where(
                        JobEvent.job_id == r.id, ~JobEvent.provider_event_id.startswith("ftm:")
                    )
                )
            )
            all_events = list(
                session.scalars(select(JobEvent.message).where(JobEvent.job_id == r.id))
            )
            assert recorded == {e.id for e in server_jobs[r.remote_id].events}, (
                r.id,
                r.remote_id,
                r.events_cursor,
                all_events,
            )
