"""TUI start-up and responsiveness with a big database: the first screen is the jobs table.

Seeds a fresh FTM_HOME with N jobs and M metric points (bulk insert through SQLAlchemy
core), then measures, each in a fresh interpreter (this script run as a child), headless
(App.run_test):

1. **time to rows**: from launching the process (interpreter start-up and imports
   included) until the Jobs table holds its first page of rows and the screen has been
   refreshed with them, not merely the shell drawn (median of ``--runs``). Baseline, same
   run: the same start-up on an empty database (until the empty table is shown), so the
   ratio is what the data costs;
2. **max event-loop stall while polling**: from the moment the first rows are shown (so
   what loads after them, the rest of the rows, the other tabs and the poller's first
   cycles, is in the window) for ``--seconds``, the real in-app poller (app.jobs.poller
   via the Jobs view) refreshes every running job over and over while keys move the
   cursor; a heartbeat coroutine (10 ms sleeps) records how late the loop wakes it; the
   worst of ``--runs`` windows is the figure. Only the provider is a bench provider: it
   answers each refresh after a simulated network delay with a new event and metric
   point, so every cycle really writes to the database. Baseline, same run: the same
   windows with the poller off.

Headline: time to rows < 1 s and max stall with the poller on < 100 ms, each with PASS or
FAIL; the exit status is 1 when a target is missed. The machine's load average is
printed with the figures: on a shared machine, run it twice.

    .venv/bin/python bench/tui_startup.py            # 10,000 jobs, 1,000,000 points
    .venv/bin/python bench/tui_startup.py --quick    # 1,000 jobs, 100,000 points
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

ROWS_TARGET_S = 1.0
STALL_TARGET_S = 0.100
BENCH_PROVIDER = "bench"
NETWORK_DELAY_S = 0.02
HEARTBEAT_S = 0.010
SETTLED_AFTER_S = 2.0
"""Stalls after this much of a window are reported apart: start-up's tail is over."""


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
        jobs.append(
            {
                "uid": uuid.uuid4().hex,
                "name": f"bench-{i:05d}",
                "provider": BENCH_PROVIDER if active else ("openai", "local")[i % 2],
                "remote_id": f"bench-{i}",
                "base_model": "gpt-4.1-mini-2025-04-14",
                "method": "supervised",
                "status": "running" if active else statuses[i % 5],
                "simulated": True,
                "stalled": False,
                "step": 10,
                "total_steps": 1000,
                "train_loss": 1.0 / (1 + i % 7),
                "created_at": now - timedelta(minutes=n_jobs - i),
                "updated_at": now,
                "estimated_cost_usd": 1.0 + i % 13,
                "last_progress_at": now,
                # an ended job's actual cost was recorded when it ended (by the poller, as
                # `app.costs.actuals` does), so no poll cycle has thousands to catch up on
                "actual": None if active else {"cost_usd": 1.1, "cost_error_pct": 10.0},
                "actual_cost_usd": None if active else 1.1,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Job.__table__), jobs)
    per_job = max(1, n_points // n_jobs)
    chunk: list[dict] = []
    with engine.begin() as conn:
        for job_id in range(1, n_jobs + 1):
            for step in range(per_job):
                chunk.append(
                    {
                        "job_id": job_id,
                        "step": step,
                        "train_loss": 2.0 / (step + 1),
                        "created_at": now,
                    }
                )
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
            n = int(events_cursor.rsplit("-", 1)[1]) + 1 if events_cursor else 1
            event_id = f"{remote_id}-ev-{n}"
            step = 1000 + n
            return Refresh(
                job=RemoteJob(
                    remote_id=remote_id, status=JobStatus.RUNNING, step=step, total_steps=100_000
                ),
                events=[
                    JobEvent(
                        id=event_id,
                        created_at=datetime.now(UTC),
                        message=f"Step {step}: training loss=0.5",
                    )
                ],
                events_cursor=event_id,
                metrics=[MetricPoint(step=step, train_loss=0.5)],
            )

    original = providers_module.make_provider

    def make_provider(name, **kw):
        if name == BENCH_PROVIDER:
            return BenchProvider()
        return original(name, **kw)

    providers_module.make_provider = make_provider


# ------------------------------------------------------------------ children (fresh process)


def child_rows() -> None:
    """Fresh process: start the app; print when its Jobs table shows its first rows (the
    first page is in the table and the screen has been refreshed with it)."""
    import_started = time.perf_counter()
    from app.tui.app import create_app
    from app.tui.views.jobs import JobsView

    imported = time.perf_counter()

    async def main() -> dict:
        shown = asyncio.Event()
        app = create_app(start_poller=False)

        def hook(message) -> None:
            if isinstance(message, JobsView.FirstLoadShown):
                app.call_after_refresh(shown.set)

        async with app.run_test(size=(120, 40), message_hook=hook):
            shell = time.perf_counter()
            await asyncio.wait_for(shown.wait(), 60)
            return {
                "rows_at": time.time(),
                "cpu_s": time.process_time(),
                "rows": app.query_one("#jobs-table").row_count,
                "imports_s": imported - import_started,
                "shell_s": shell - import_started,
            }

    print(json.dumps(asyncio.run(main())))


def child_stall(with_poller: bool, seconds: float, min_cycles: int) -> None:
    """Fresh process: the app with its table shown; cursor moves for ``seconds`` (and at
    least ``min_cycles`` poll cycles when polling) while a heartbeat measures the loop."""
    from textual import events
    from textual.widgets import DataTable

    install_bench_provider()
    from app.tui.app import create_app
    from app.tui.views.jobs import JobsView

    async def main() -> dict:
        app = create_app(start_poller=with_poller)
        reports: dict[int, object] = {}
        shown = asyncio.Event()

        def hook(message) -> None:
            # the hook sees a message at every node it bubbles through: count each once
            if isinstance(message, JobsView.PollCycleDone):
                reports[id(message.report)] = message.report
            elif isinstance(message, JobsView.FirstLoadShown):
                shown.set()

        latencies: list[float] = []
        lags: list[tuple[float, float]] = []
        stop = asyncio.Event()

        async def heartbeat() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                await asyncio.sleep(HEARTBEAT_S)
                lags.append((t0 - started, time.perf_counter() - t0 - HEARTBEAT_S))

        async with app.run_test(size=(120, 40), message_hook=hook):
            table = app.query_one("#jobs-table", DataTable)
            # The window opens as the first rows are shown: what loads after them (the
            # rest of the rows, the other tabs, the poller's first cycles) is in it.
            await asyncio.wait_for(shown.wait(), 60)
            started = time.perf_counter()
            beat = asyncio.create_task(heartbeat())
            table.focus()
            i = 0
            while time.perf_counter() - started < seconds or (
                with_poller and len(reports) < min_cycles and time.perf_counter() - started < 120
            ):
                key = "down" if (i // 20) % 2 == 0 else "up"
                i += 1
                before = table.cursor_row
                t0 = time.perf_counter()
                app._driver.send_message(events.Key(key, None))
                while table.cursor_row == before and time.perf_counter() - t0 < 10:
                    await asyncio.sleep(0.0005)
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.03)  # a fast typist, not a flood
            window = time.perf_counter() - started
            stop.set()
            await beat
        done = list(reports.values())
        return {
            "lags": lags,
            "latencies": latencies,
            "window_s": window,
            "cycles": len(done),
            "events": sum(r.events_recorded for r in done),
            "jobs": max((r.jobs for r in done), default=0),
            "cycle_s": [r.duration_s for r in done],
        }

    print(json.dumps(asyncio.run(main())))


def run_child(home: Path, *args: str) -> tuple[dict, float]:
    """Run this script as a child on ``home``: (its JSON answer, launch wall time)."""
    env = {**os.environ, "FTM_HOME": str(home), "PYTHONPATH": str(REPO)}
    launched = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    if out.returncode != 0:
        sys.exit(f"bench child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), launched


def time_to_rows(home: Path, runs: int) -> tuple[list[float], list[float], dict]:
    """Launch-to-rows seconds of ``runs`` fresh processes, the CPU seconds each used by
    then (all threads; steadier than wall time on a loaded machine), the last answer."""
    times, cpu = [], []
    answer: dict = {}
    for _ in range(runs):
        answer, launched = run_child(home, "rows")
        times.append(answer["rows_at"] - launched)
        cpu.append(answer["cpu_s"])
    return times, cpu, answer


# ------------------------------------------------------------------------------ reporting


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def spread(values: list[float]) -> str:
    return f"median of {len(values)}, range {ms(min(values))}-{ms(max(values))}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--active", type=int, default=200, help="running jobs the poller refreshes")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per start-up figure")
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="length of each stall window (cursor moves meanwhile)",
    )
    parser.add_argument(
        "--cycles", type=int, default=3, help="poll cycles the poller-on window lasts at least"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 jobs and 100,000 points, shorter windows"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["FTM_POLLER__INTERVAL_S"] = "0.2"
    os.environ["FTM_POLLER__REQUESTS_PER_SECOND"] = "1000"
    if args.child:
        if args.child[0] == "rows":
            child_rows()
        else:
            child_stall(args.child[1] == "on", float(args.child[2]), int(args.child[3]))
        return 0
    if args.quick:
        args.jobs, args.points, args.active, args.seconds = 1_000, 100_000, 50, 4.0

    with tempfile.TemporaryDirectory() as tmp:
        empty, big = Path(tmp) / "empty", Path(tmp) / "big"
        use_home(empty)
        from app.database import get_engine

        get_engine()  # created and migrated, as a user's second start finds it
        use_home(big)
        seed_s = seed(args.jobs, args.points, args.active)
        print(
            f"seeded {args.jobs:,} jobs ({args.active} running) and {args.points:,} metric "
            f"points in {seed_s:.1f} s"
        )
        run_child(big, "rows")  # warm the OS file cache, as any start after the first finds it
        empty_rows, empty_cpu, _ = time_to_rows(empty, args.runs)
        big_rows, big_cpu, answer = time_to_rows(big, args.runs)
        window = (str(args.seconds), str(args.cycles))
        offs = [run_child(big, "stall", "off", *window)[0] for _ in range(args.runs)]
        ons = [run_child(big, "stall", "on", *window)[0] for _ in range(args.runs)]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    rows_s, empty_s = statistics.median(big_rows), statistics.median(empty_rows)
    worst_on = [max(lag for _, lag in run["lags"]) for run in ons]
    worst_off = [max(lag for _, lag in run["lags"]) for run in offs]
    stall_on, stall_off = max(worst_on), max(worst_off)
    cycles = [run["cycles"] for run in ons]
    rows_ok = rows_s < ROWS_TARGET_S
    stall_ok = stall_on < STALL_TARGET_S and min(cycles) > 0
    print(f"load average {load} (2-core machine shared with others: figures vary with it)")
    print(
        f"\nHEADLINE jobs table with rows, fresh process: {ms(rows_s)} ({spread(big_rows)}); "
        f"empty DB {ms(empty_s)}, ratio {rows_s / empty_s:.2f}; target < {ms(ROWS_TARGET_S)}"
        f"  {verdict(rows_ok)}"
    )
    print(
        f"HEADLINE max event-loop stall, poller on: {ms(stall_on)} (worst of {len(ons)} "
        f"windows: {', '.join(ms(x) for x in worst_on)}); poller off {ms(stall_off)}, ratio "
        f"{stall_on / max(stall_off, 1e-3):.2f}; target < {ms(STALL_TARGET_S)}  "
        f"{verdict(stall_ok)}"
    )
    print(
        f"\n  start-up ({answer['rows']} rows shown): imports {ms(answer['imports_s'])}, "
        f"shell drawn {ms(answer['shell_s'])} after the imports began (last run; the rows "
        "figure also counts interpreter start-up)"
    )
    print(
        f"  CPU time used by the process until the rows: {ms(statistics.median(big_cpu))}"
        f" (empty DB {ms(statistics.median(empty_cpu))})"
    )
    cycle_s = [c for run in ons for c in run["cycle_s"]]
    print(
        f"  polling: {'/'.join(map(str, cycles))} cycles over {ons[0]['jobs']} running jobs in "
        f"windows of {ons[0]['window_s']:.1f} s (cycle median "
        f"{statistics.median(cycle_s or [0]):.2f} s), {sum(r['events'] for r in ons):,} "
        "events written"
    )
    for name, runs in (("off", offs), ("on ", ons)):
        lags = [lag for run in runs for _, lag in run["lags"]]
        settled = [
            max([lag for t, lag in run["lags"] if t >= SETTLED_AFTER_S] or [0]) for run in runs
        ]
        keys = [k for run in runs for k in run["latencies"]]
        print(
            f"  poller {name}: loop lag p95 {ms(p95(lags))}, max {ms(max(lags))}, max after the "
            f"first {SETTLED_AFTER_S:.0f} s {ms(max(settled))}; key latency p50 "
            f"{ms(statistics.median(keys))}, p95 {ms(p95(keys))}, max {ms(max(keys))} "
            f"({len(keys)} keys)"
        )
    return 0 if rows_ok and stall_ok else 1


if __name__ == "__main__":
    sys.exit(main())
