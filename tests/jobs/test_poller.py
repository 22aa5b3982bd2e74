"""The poller: two at once record nothing twice; stall detection; backoff; rate limits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlmodel import func, select

from app.jobs.launch import launch_job
from app.jobs.poller import Poller, RateLimiter
from app.sandbox.faults import FaultPlan
from app.settings import PollerSettings
from db.engine import read_session
from db.models import Checkpoint, Job, JobEvent, MetricPoint
from providers.backoff import backoff_delay
from tests.jobs.conftest import MODEL, job_row, make_dataset, poll_until

FAST = PollerSettings(concurrency=8, requests_per_second=1000, stall_after_s=3600)


def _counts(engine, job_id):
    with read_session(engine) as session:

        def count(model):
            return session.scalar(
                select(func.count()).select_from(model).where(model.job_id == job_id)
            )

        return count(JobEvent), count(MetricPoint), count(Checkpoint)


def test_two_pollers_at_once_record_everything_once(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    jobs = [
        launch_job("openai", "toy", MODEL, suffix=f"p{i}", hyperparameters={"n_epochs": 2})
        for i in range(4)
    ]
    first, second = Poller(engine, settings=FAST), Poller(engine, settings=FAST)

    def done():
        return all(job_row(engine, j.id).status == "succeeded" for j in jobs)

    async def both():
        deadline = time.monotonic() + 60
        while not done():
            assert time.monotonic() < deadline
            await asyncio.gather(first.run_once(), second.run_once())
            await asyncio.sleep(0.02)
        # both see the same (already finished) state once more: still nothing doubled
        await asyncio.gather(first.run_once(), second.run_once())

    asyncio.run(both())
    first.close()
    second.close()
    for j in jobs:
        row = job_row(engine, j.id)
        server = sandbox.state.jobs[row.remote_id]
        with read_session(engine) as session:
            provider_events = list(
                session.scalars(
                    select(JobEvent.provider_event_id).where(
                        JobEvent.job_id == row.id, ~JobEvent.provider_event_id.startswith("ftm:")
                    )
                )
            )
            status_events = list(
                session.scalars(
                    select(JobEvent.message).where(
                        JobEvent.job_id == row.id, JobEvent.type == "status"
                    )
                )
            )
        assert sorted(provider_events) == sorted(e.id for e in server.events)
        assert len(status_events) == len(set(status_events))
        _, metrics, checkpoints = _counts(engine, row.id)
        assert metrics == row.total_steps and checkpoints == 2


def test_a_job_without_progress_gets_one_stall_warning(tmp_path, monkeypatch):
    from app import database
    from app.sandbox.server import SandboxServer

    # a frozen sandbox clock: the job never moves on
    with SandboxServer(port=0, seconds_per_step=0.01, frozen=True) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path)
        job = launch_job("openai", "toy", MODEL)
        clock = {"now": datetime.now(UTC)}
        settings = PollerSettings(concurrency=2, requests_per_second=1000, stall_after_s=600)
        pollers = [Poller(engine, settings=settings, now=lambda: clock["now"]) for _ in range(2)]
        poll_until(pollers[0], lambda: True)
        assert not job_row(engine, job.id).stalled
        clock["now"] += timedelta(seconds=601)

        async def both():
            await asyncio.gather(*(p.run_once() for p in pollers))

        for _ in range(3):  # several cycles, two pollers: still one warning
            asyncio.run(both())
        row = job_row(engine, job.id)
        assert row.stalled
        with read_session(engine) as session:
            stalls = list(
                session.scalars(
                    select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "stall")
                )
            )
        assert len(stalls) == 1 and stalls[0].level == "warn"
        assert "No progress for 10 min" in stalls[0].message
        # progress clears the flag
        server.advance(30)
        poll_until(pollers[0], lambda: True)
        assert not job_row(engine, job.id).stalled
        for p in pollers:
            p.close()


def test_backoff_honours_retry_after_and_grows_with_jitter():
    assert backoff_delay(0, 5.0) >= 5.0
    delays = [backoff_delay(6, None, base=0.25, cap=8.0) for _ in range(200)]
    assert max(delays) <= 8.0 and len(set(delays)) > 150  # jittered, capped
    assert max(backoff_delay(0) for _ in range(200)) <= 0.25


def test_a_rate_limited_job_is_deferred_and_then_caught_up(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL)
    # every read of this job is refused with a long Retry-After: the poller backs off
    sandbox.faults = FaultPlan().add("jobs.retrieve", "rate_limit", count=3, retry_after_s=0.5)
    poller = Poller(
        engine,
        settings=PollerSettings(concurrency=2, requests_per_second=1000, stall_after_s=3600),
        backoff_base_s=0.01,
    )
    first = asyncio.run(poller.run_once())
    assert first.errors == 1 and first.refreshed == 0
    second = asyncio.run(poller.run_once())
    assert second.deferred == 1  # not retried before Retry-After has passed
    time.sleep(0.6)
    poll_until(poller, lambda: job_row(engine, job.id).status == "succeeded")
    poller.close()


def test_rate_limiter_spaces_starts():
    async def go():
        limiter = RateLimiter(50.0)
        started = time.monotonic()
        for _ in range(11):
            await limiter.acquire()
        return time.monotonic() - started

    assert asyncio.run(go()) >= 0.19


def test_watch_once_polls_and_reports(engine, sandbox, tmp_path):
    from click.testing import CliRunner

    from app.cli.main import cli

    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL)
    sandbox.advance(60)
    result = CliRunner().invoke(cli, ["watch", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 active, 1 refreshed" in result.output and "1 finished" in result.output
    assert job_row(engine, job.id).status == "succeeded"
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_events_beyond_one_page_are_fetched_once_and_only_new_ones(tmp_path, monkeypatch):
    from app import database
    from app.sandbox.server import SandboxServer

    with SandboxServer(
        port=0, seconds_per_step=1.0, frozen=True, validation_s=1.0, queue_s=1.0
    ) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path, n_train=100)
        job = launch_job("openai", "toy", MODEL, hyperparameters={"n_epochs": 3, "batch_size": 1})
        poller = Poller(engine, settings=FAST)
        server.advance(5)
        first = asyncio.run(poller.run_once())
        events = server.state.jobs[job.remote_id].events
        assert first.events_fetched == len(events)
        cursor = job_row(engine, job.id).events_cursor
        assert cursor == events[-1].id
        server.advance(130)  # > 2 pages of 50 new events, newest first
        second = asyncio.run(poller.run_once())
        events = server.state.jobs[job.remote_id].events
        new = [e for e in events if e.id not in {x.id for x in events[: first.events_fetched]}]
        assert second.events_fetched == len(new) > 100
        quiet = asyncio.run(poller.run_once())
        assert quiet.events_fetched == 0
        with read_session(engine) as session:
            recorded = list(
                session.scalars(
                    select(JobEvent.provider_event_id).where(
                        JobEvent.job_id == job.id, ~JobEvent.provider_event_id.startswith("ftm:")
                    )
                )
            )
        assert sorted(recorded) == sorted(e.id for e in events)
        poller.close()


def test_a_provider_that_crashes_does_not_stop_the_poller(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL)

    class Broken:
        def refresh(self, remote_id, events_cursor=None):
            raise KeyError("bug in a plugin")

        def close(self):
            pass

    poller = Poller(engine, settings=FAST, provider_factory=lambda name: Broken())
    report = asyncio.run(poller.run_once())
    assert report.errors == 1 and "KeyError" in report.messages[0]
    assert job_row(engine, job.id).status == "validating"
    poller.close()


def test_each_cycle_records_actuals_of_jobs_that_ended_unseen_and_loads_only_those():
    """A local worker writes its job's end itself: the poller never sees the transition, so
    each cycle records the actuals of ended jobs that have none, reading only those."""
    from sqlalchemy import event

    from app.database import get_engine
    from db.engine import write_session

    engine = get_engine()
    start = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    recorded = {"cost_usd": None, "cost_error_pct": None, "kind": "local"}
    with write_session(engine) as session:
        session.add_all(
            [
                Job(
                    name=f"old{i}",
                    provider="local",
                    base_model="m",
                    method="lora",
                    status="succeeded",
                    actual=recorded,
                )
                for i in range(300)
            ]
        )
        session.add(
            Job(
                name="running",
                provider="local",
                base_model="m",
                method="lora",
                status="running",
                started_at=start,
            )
        )
        # what the worker wrote: its own figures, no cost comparison yet
        session.add(
            Job(
                name="ended",
                provider="local",
                base_model="m",
                method="lora",
                status="succeeded",
                started_at=start,
                finished_at=start + timedelta(minutes=3),
                actual={"train_runtime_s": 170.0, "hardware": "cpu"},
            )
        )
    loaded = []

    def count(target, _context):
        loaded.append(target.name)

    event.listen(Job, "load", count)
    poller = Poller(engine, settings=FAST)
    try:
        first = asyncio.run(poller.run_once())
        assert first.actuals_recorded == 1
        assert loaded.count("ended") >= 1 and not any(n.startswith("old") for n in loaded)
        loaded.clear()
        second = asyncio.run(poller.run_once())
        assert second.actuals_recorded == 0 and loaded == []
    finally:
        event.remove(Job, "load", count)
        poller.close()
    with read_session(engine) as session:
        ended = session.exec(select(Job).where(Job.name == "ended")).one()
    assert "cost_error_pct" in ended.actual and ended.actual["wall_seconds"] == 180.0
    assert ended.actual["train_runtime_s"] == 170.0  # the worker's own figures are kept


def test_a_job_whose_actual_cannot_be_computed_does_not_block_the_others(monkeypatch):
    import app.costs.actuals as actuals
    from app.database import get_engine
    from db.engine import write_session

    real = actuals._local_actual

    def broken_for_one(session, job, catalog):
        if job.name == "broken":
            raise KeyError("no such hardware")
        return real(session, job, catalog)

    monkeypatch.setattr(actuals, "_local_actual", broken_for_one)
    engine = get_engine()
    start = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with write_session(engine) as session:
        for name in ("broken", "fine"):
            session.add(
                Job(
                    name=name,
                    provider="local",
                    base_model="m",
                    method="lora",
                    status="succeeded",
                    started_at=start,
                    finished_at=start + timedelta(minutes=1),
                )
            )
    poller = Poller(engine, settings=FAST)
    try:
        assert asyncio.run(poller.run_once()).actuals_recorded == 2
        assert asyncio.run(poller.run_once()).actuals_recorded == 0  # not retried forever
    finally:
        poller.close()
    with read_session(engine) as session:
        rows = {j.name: j for j in session.exec(select(Job))}
    assert rows["fine"].actual["wall_seconds"] == 60.0
    assert "could not compute the actual cost: KeyError" in rows["broken"].actual["note"]
