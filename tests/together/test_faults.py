"""Hundreds of injected faults on the Together emulator during upload, price check,
create and poll: no duplicate job, no lost job (the OpenAI run is tests/jobs/test_faults.py)."""

from __future__ import annotations

import asyncio
import time

from sqlmodel import select

from app import database
from app.jobs.launch import LaunchUnconfirmed, launch_job
from app.jobs.poller import Poller
from app.sandbox.faults import FaultPlan
from app.sandbox.together.server import TogetherSandboxServer
from app.settings import PollerSettings
from db.engine import read_session
from db.models import Job, JobEvent, MetricPoint
from providers.together.convert import uid_tag
from tests.jobs.conftest import make_dataset
from tests.together.conftest import SMALL

N_JOBS = 50
TERMINAL = ("succeeded", "failed", "cancelled")


def _plan() -> FaultPlan:
    plan = FaultPlan(seed=13)
    plan.next(6, "drop_after", "jobs.create")  # the first creates surely lose their answer
    plan.add("jobs.create", "drop_after", probability=0.3)  # made, answer lost
    plan.add("jobs.create", "slow", probability=0.08, delay_s=0.6)  # outlives the timeout
    plan.add("jobs.create", "rate_limit", probability=0.15, retry_after_s=0.01)
    plan.add("jobs.create", "server_error", probability=0.1)
    plan.add("jobs.create", "error_after", probability=0.1)  # made, then a 500
    plan.add("jobs.create", "unavailable", probability=0.1)
    plan.add("jobs.list", "server_error", probability=0.2)  # the lookups
    plan.add("jobs.list", "drop_before", probability=0.1)
    plan.add("jobs.estimate_price", "drop_after", probability=0.1)
    plan.add("jobs.estimate_price", "rate_limit", probability=0.1, retry_after_s=0.01)
    plan.add("jobs.limits", "server_error", probability=0.1)
    plan.add("files.create", "unavailable", probability=0.08)
    for route in ("jobs.retrieve", "jobs.checkpoints", "jobs.metrics"):  # polling
        plan.add(route, "rate_limit", probability=0.15, retry_after_s=0.01)
        plan.add(route, "server_error", probability=0.1)
        plan.add(route, "unavailable", probability=0.1)
        plan.add(route, "drop_after", probability=0.08)
    return plan


def test_faults_during_create_and_poll_lose_and_duplicate_nothing(tmp_path, monkeypatch):
    with TogetherSandboxServer(port=0, seconds_per_step=0.15, seed=3) as server:
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__TIMEOUT_S", "0.4")
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path, n_train=12)
        server.faults = _plan()
        unconfirmed = _launch_while_polling(engine)

        injected = server.faults.injected
        create_faults = sum(n for (route, _), n in injected.items() if route == "jobs.create")
        total = server.faults.total_injected()
        print(
            f"faults injected: {total} (create: {create_faults}); by kind: {dict(injected)}; "
            f"unconfirmed launches: {len(unconfirmed)}"
        )
        assert total >= 200 and create_faults >= 15
        with read_session(engine) as session:
            rows = list(session.scalars(select(Job)))
            jobs = server.state.jobs
            # zero duplicates: one remote job per ftm job, carrying its uid tag
            tags = [j.suffix for j in jobs.values()]
            assert len(tags) == len(set(tags)) == len(jobs) == N_JOBS == len(rows)
            # zero lost: every remote job is tracked by the row whose uid it carries
            assert {r.remote_id for r in rows} == set(jobs)
            for r in rows:
                assert r.status == "succeeded", (r.id, r.status, r.error)
                assert jobs[r.remote_id].suffix == uid_tag(r.uid)
                assert r.billed_usd == jobs[r.remote_id].total_price / 1e9
                recorded = set(
                    session.scalars(
                        select(JobEvent.provider_event_id).where(
                            JobEvent.job_id == r.id, ~JobEvent.provider_event_id.startswith("ftm:")
                        )
                    )
                )
                expected = {f"{r.remote_id}#{i}" for i in range(len(jobs[r.remote_id].events))}
                assert recorded == expected, r.id
                steps = list(
                    session.scalars(select(MetricPoint.step).where(MetricPoint.job_id == r.id))
                )
                assert sorted(steps) == list(range(1, jobs[r.remote_id].total_steps + 1)), r.id


def _launch_while_polling(engine) -> list[int]:
    unconfirmed: list[int] = []

    def launch_all() -> None:
        for _ in range(N_JOBS):
            try:
                launch_job("together", "toy", SMALL, hyperparameters={"n_epochs": 2})
            except LaunchUnconfirmed as exc:  # allowed: the poller settles it by uid
                unconfirmed.append(exc.job_id)

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
        return len(statuses) == N_JOBS and all(s in TERMINAL for s in statuses)

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
                        if j.status not in TERMINAL
                    ]
                raise AssertionError(
                    f"jobs did not finish: {stuck}; launching done: {launching.done()}"
                )
            await poller.run_once()
            await asyncio.sleep(0.02)
        await launching

    asyncio.run(go())
    poller.close()
    return unconfirmed
