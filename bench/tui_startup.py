"""TUI start-up and responsiveness with a big database.

Seeds a fresh FTM_HOME with N jobs and M metric points (bulk insert through SQLAlchemy
core), then measures, headless (App.run_test):

1. time until the first screen is mounted, and until the Jobs table shows its rows,
   against the same app on an empty database (the baseline, measured in the same run);
   and the same in a fresh interpreter, imports included;
2. key-press latency in the Jobs table (cursor moves) while the in-app poller refreshes
   active jobs continuously, against the same presses with the poller off. The poller is
   the real one (app.jobs.poller via the Jobs view); only the provider is a bench
   provider that answers each refresh after a simulated network delay with new events
   and metric points, so every cycle really writes to the database.

Targets: first screen < 1 s; p95 key latency while polling < 100 ms.

    .venv/bin/python bench/tui_startup.py            # 10,000 jobs, 1,000,000 points
    .venv/bin/python bench/tui_startup.py --quick    # 1,000 jobs, 100,000 points
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIRST_SCREEN_TARGET_S = 1.0
KEY_P95_TARGET_S = 0.100
BENCH_PROVIDER = "bench"
NETWORK_DELAY_S = 0.02


def use_home(home: Path) -> None:
    """Point ftm at ``home`` (its own database)."""
    from app import database

    os.environ["FTM_HOME"] = str(home)
    database.reset()


def seed(n_jobs: int, n_points: int, n_active: int) -> float:
    """Bulk-insert jobs and metric points; returns seconds taken."""
    from sqlalchemy import insert

    from app.database import get_engine
    from db.models import Job, MetricPoint

    engine = get_engine()
    started = time.perf_counter()
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    statuses = ["succeeded", "failed", "cancelled", "succeeded", "succeeded"]
    jobs = []
    for i in range(n_jobs):
        active = i >= n_jobs - n_active
        jobs.append({
            "uid": uuid.uuid4().hex, "name": f"bench-{i:05d}",
            "provider": BENCH_PROVIDER if active else ("openai", "local")[i % 2],
            "remote_id": f"bench-{i}", "base_model": "gpt-4.1-mini-2025-04-14",
            "method": "supervised", "status": "running" if active else statuses[i % 5],
            "simulated": True, "stalled": False, "step": 10, "total_steps": 1000,
            "train_loss": 1.0 / (1 + i % 7), "created_at": now - timedelta(minutes=n_jobs - i),
            "updated_at": now, "estimated_cost_usd": 1.0 + i % 13,
            "last_progress_at": now,
        })
    with engine.begin() as conn:
        conn.execute(insert(Job.__table__), jobs)
    per_job = max(1, n_points // n_jobs)
    chunk: list[dict] = []
    with engine.begin() as conn:
        for job_id in range(1, n_jobs + 1):
            for step in range(per_job):
                chunk.append({"job_id": job_id, "step": step, "train_loss": 2.0 / (step + 1),
                              "created_at": now})
            if len(chunk) >= 50_000:
                conn.execute(insert(MetricPoint.__table__), chunk)
                chunk.clear()
        if chunk:
            conn.execute(insert(MetricPoint.__table__), chunk)
    return time.perf_counter() - started


def install_bench_provider() -> None:
    """Make `app.jobs.providers.make_provider('bench')` build the bench provider."""
    import app.jobs.providers as providers_module
    from providers.base import Provider
    from providers.types import JobEvent, JobStatus, MetricPoint, Refresh, RemoteJob

    class BenchProvider(Provider):
        """Answers refreshes after a network-like delay with one new event and metric."""

        name = BENCH_PROVIDER
        display_name = "Bench"

        def __init__(self) -> None:
            self.calls = 0

        def prepare(self, spec):  # pragma: no cover - not used by the bench
            return spec

        def create(self, spec):  # pragma: no cover
            raise NotImplementedError

        def cancel(self, remote_id):  # pragma: no cover
            raise NotImplementedError

        def list_base_models(self):
            return []

        def complete(self, model, messages, **kw):  # pragma: no cover
            raise NotImplementedError

        def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
            time.sleep(NETWORK_DELAY_S)
            self.calls += 1
            n = int(events_cursor.rsplit("-", 1)[1]) + 1 if events_cursor else 1
            event_id = f"{remote_id}-ev-{n}"
            step = 1000 + n
            return Refresh(
                job=RemoteJob(remote_id=remote_id, status=JobStatus.RUNNING, step=step,
                              total_steps=100_000),
                events=[JobEvent(id=event_id, created_at=datetime.now(UTC),
                                 message=f"Step {step}: training loss=0.5")],
                events_cursor=event_id,
                metrics=[MetricPoint(step=step, train_loss=0.5)],
            )

    original = providers_module.make_provider

    def make_provider(name, **kw):
        if name == BENCH_PROVIDER:
            return BenchProvider()
        return original(name, **kw)

    providers_module.make_provider = make_provider


async def measure_startup() -> tuple[float, float, int]:
    """(seconds to first screen, seconds until the Jobs table shows its first load, rows)."""
    from textual.widgets import DataTable

    from app.tui.app import create_app
    from app.tui.views.jobs import JobsView

    loaded = asyncio.Event()
    expected: list[int] = []

    def hook(message) -> None:
        if isinstance(message, JobsView.Loaded) and not loaded.is_set():
            expected.append(len(message.jobs))
            loaded.set()

    started = time.perf_counter()
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        first_screen = time.perf_counter() - started
        await asyncio.wait_for(loaded.wait(), 60)
        table = app.query_one("#jobs-table", DataTable)
        # the Loaded message has arrived; wait for its handler to fill the table
        while table.row_count < expected[0]:
            await asyncio.sleep(0.001)
        populated = time.perf_counter() - started
        rows = table.row_count
        await pilot.pause()
    return first_screen, populated, rows


async def measure_keys(presses: int, with_poller: bool) -> tuple[list[float], list[float], int]:
    """Cursor moves in the Jobs table: per key, the time from the key arriving (as from the
    terminal driver) to the cursor having moved; plus the event loop's lag (how late a
    10 ms heartbeat wakes up) and the poll cycles completed meanwhile."""
    from textual import events
    from textual.widgets import DataTable

    from app.tui.app import create_app
    from app.tui.views.jobs import JobsView

    app = create_app(start_poller=with_poller)
    cycles = 0
    counted: set[int] = set()

    def count(message) -> None:
        # the hook sees a message at every node it bubbles through: count each once
        nonlocal cycles
        if isinstance(message, JobsView.PollCycleDone) and id(message.report) not in counted:
            counted.add(id(message.report))
            cycles += 1

    latencies: list[float] = []
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.010)
            lags.append(time.perf_counter() - t0 - 0.010)

    async with app.run_test(size=(120, 40), message_hook=count) as pilot:
        table = app.query_one("#jobs-table", DataTable)
        while table.row_count < 25:
            await asyncio.sleep(0.01)
        table.focus()
        await pilot.pause()
        beat = asyncio.create_task(heartbeat())
        if with_poller:  # let the poller get going
            await asyncio.sleep(1.0)
        for i in range(presses):
            key = "down" if (i // 20) % 2 == 0 else "up"
            before = table.cursor_row
            t0 = time.perf_counter()
            app._driver.send_message(events.Key(key, None))
            while table.cursor_row == before and time.perf_counter() - t0 < 10:
                await asyncio.sleep(0.0005)
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.03)  # a fast typist, not a flood
        stop.set()
        await beat
    return latencies, lags, cycles


COLD_START = """
import time
t0 = time.perf_counter()
import asyncio
from app.tui.app import create_app
from app.tui.views.jobs import JobsView

async def main():
    shown = asyncio.Event()
    expected = []

    def hook(message):
        if isinstance(message, JobsView.Loaded) and not expected:
            expected.append(len(message.jobs))
            shown.set()

    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        first = time.perf_counter() - t0
        await asyncio.wait_for(shown.wait(), 60)
        table = app.query_one("#jobs-table")
        while table.row_count < expected[0]:
            await asyncio.sleep(0.001)
        print(first, time.perf_counter() - t0)

asyncio.run(main())
"""


def cold_start(runs: int = 3) -> tuple[float, float]:
    """A fresh interpreter: (imports + first screen, imports + populated Jobs table),
    median of ``runs`` (interpreter start-up itself, ~50 ms, is not counted)."""
    firsts, fulls = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", COLD_START], capture_output=True,
                             text=True, check=True, cwd=REPO, env=os.environ.copy())
        first, full = map(float, out.stdout.split())
        firsts.append(first)
        fulls.append(full)
    return statistics.median(firsts), statistics.median(fulls)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--active", type=int, default=200, help="running jobs the poller refreshes")
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 jobs and 100,000 points")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.points, args.active, args.presses = 1_000, 100_000, 50, 40

    os.environ["FTM_POLLER__INTERVAL_S"] = "0.2"
    os.environ["FTM_POLLER__REQUESTS_PER_SECOND"] = "1000"
    install_bench_provider()
    with tempfile.TemporaryDirectory() as tmp:
        use_home(Path(tmp) / "empty")
        from app.database import get_engine

        get_engine()
        empty_first, empty_full, _ = asyncio.run(measure_startup())

        use_home(Path(tmp) / "big")
        seed_s = seed(args.jobs, args.points, args.active)
        print(f"seeded {args.jobs:,} jobs and {args.points:,} metric points in {seed_s:.1f} s")
        asyncio.run(measure_startup())  # warm the OS file cache as a second start would
        big_first, big_full, rows = asyncio.run(measure_startup())

        cold_first, cold_full = cold_start()
        idle, idle_lag, _ = asyncio.run(measure_keys(args.presses, with_poller=False))
        busy, busy_lag, cycles = asyncio.run(measure_keys(args.presses, with_poller=True))
        from sqlmodel import func, select

        from db.engine import read_session
        from db.models import JobEvent

        with read_session(get_engine()) as session:
            events = session.exec(select(func.count()).select_from(JobEvent)).one()

    print(f"first screen:  {big_first * 1000:7.0f} ms   empty DB {empty_first * 1000:6.0f} ms"
          f"   ratio {big_first / empty_first:5.2f}   target < {FIRST_SCREEN_TARGET_S * 1000:.0f} ms"
          f"  {'OK' if big_first < FIRST_SCREEN_TARGET_S else 'MISSED'}")
    print(f"jobs table:    {big_full * 1000:7.0f} ms   empty DB {empty_full * 1000:6.0f} ms"
          f"   ratio {big_full / empty_full:5.2f}   ({rows} rows shown)")
    print(f"fresh process (imports included): first screen {cold_first * 1000:.0f} ms, jobs table"
          f" {cold_full * 1000:.0f} ms (median of 3)   target < {FIRST_SCREEN_TARGET_S * 1000:.0f} ms"
          f"  {'OK' if cold_first < FIRST_SCREEN_TARGET_S else 'MISSED'}")
    print(f"key latency, poller off: p50 {statistics.median(idle) * 1000:5.1f} ms"
          f"  p95 {p95(idle) * 1000:5.1f} ms  max {max(idle) * 1000:5.1f} ms")
    print(f"key latency, poller on:  p50 {statistics.median(busy) * 1000:5.1f} ms"
          f"  p95 {p95(busy) * 1000:5.1f} ms  max {max(busy) * 1000:5.1f} ms"
          f"  ({cycles} poll cycles over {args.active} running jobs, {events:,} events written)")
    print(f"event-loop lag, poller off: p95 {p95(idle_lag) * 1000:5.1f} ms  max "
          f"{max(idle_lag) * 1000:5.1f} ms;  poller on: p95 {p95(busy_lag) * 1000:5.1f} ms  max "
          f"{max(busy_lag) * 1000:5.1f} ms")
    print(f"p95 ratio poller on/off: {p95(busy) / p95(idle):.2f}   target p95 < "
          f"{KEY_P95_TARGET_S * 1000:.0f} ms  {'OK' if p95(busy) < KEY_P95_TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
