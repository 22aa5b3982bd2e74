"""One poll cycle over many active jobs on the emulators: concurrent vs one after another.

Set-up: the OpenAI and the Together emulators (app.sandbox) run in one child process with
frozen clocks that this script moves, so every cycle measured does the same work; jobs
are launched on both through `app.jobs.launch.launch_job` (real SDKs, real HTTP, real
SQLite) and given some history. Together's API has no event cursor (a job's events come
with the job); its provider hands on only the events after the one ftm recorded last.

Measured, in the same run:
1. a first cycle (fetches each job's whole event history);
2. the baseline: the same poller with concurrency 1 (jobs refreshed one after another);
3. the concurrent poller (settings.poller.concurrency, default 16), same work;
4. the clock is moved 5 steps and one more cycle runs: it must fetch only the new events
   (exactly as many as both emulators added).

Each request to the emulator is answered after ``--latency-ms`` (default 40 ms, a modest
round trip to the real API; the emulator's "slow" fault sleeps without blocking). With
``--latency-ms 0`` the figure shows loopback speed, where both processes share 2 cores.

    .venv/bin/python bench/poll_cycle.py            # 250 OpenAI + 250 Together jobs
    .venv/bin/python bench/poll_cycle.py --quick    # 50 + 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_RATIO = 5.0
MODEL = "gpt-4o-mini-2024-07-18"
TOGETHER_MODEL = "meta-llama/Llama-3.2-1B-Instruct"


# --------------------------------------------------------------------------- the emulator


def serve(latency_ms: float) -> None:
    """Child process: run both emulators; read 'advance S' / 'stats' / 'quit' on stdin."""
    from app.sandbox.faults import FaultPlan
    from app.sandbox.server import SandboxServer
    from app.sandbox.together.server import TogetherSandboxServer

    def latency() -> FaultPlan | None:
        return FaultPlan().add("*", "slow", delay_s=latency_ms / 1000) if latency_ms else None

    timing = {"seconds_per_step": 1.0, "frozen": True, "validation_s": 1.0, "queue_s": 1.0}
    with (
        SandboxServer(port=0, faults=latency(), **timing) as server,
        TogetherSandboxServer(port=0, faults=latency(), **timing) as together,
    ):
        print(
            json.dumps({"base_url": server.base_url, "together_url": together.base_url}),
            flush=True,
        )
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "advance":
                server.advance(float(arg))
                together.advance(float(arg))
                print(json.dumps({"ok": True}), flush=True)
            elif cmd == "stats":
                # settle every job first (lazy), so the counts are those a poll now sees
                together.state.list_jobs()
                for job_id in list(server.state.jobs):
                    server.state.retrieve_job(job_id)
                jobs = list(server.state.jobs.values()) + list(together.state.jobs.values())
                print(
                    json.dumps({"jobs": len(jobs), "events": sum(len(j.events) for j in jobs)}),
                    flush=True,
                )
            elif cmd == "quit":
                break


class Emulator:
    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--latency-ms", str(latency_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        urls = self._read()
        self.base_url, self.together_url = urls["base_url"], urls["together_url"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=15)
        except Exception:
            self.proc.kill()


# --------------------------------------------------------------------------- the run


def make_dataset(engine, root: Path):
    from db.engine import write_session
    from db.models import Dataset

    data_dir = root / "dataset"
    data_dir.mkdir(parents=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(40)
    ]
    (data_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with write_session(engine) as session:
        session.add(
            Dataset(
                name="bench",
                content_hash="bench",
                format="chat",
                source_path=str(data_dir),
                n_examples=40,
                n_train=40,
                n_validation=0,
                val_fraction=0.0,
                split_seed=0,
                verdict="ok",
                data_dir=str(data_dir),
            )
        )


def cycle(poller) -> tuple[float, object]:
    started = time.perf_counter()
    report = asyncio.run(poller.run_once())
    return time.perf_counter() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=250, help="OpenAI emulator jobs")
    parser.add_argument("--together-jobs", type=int, default=250, help="Together emulator jobs")
    parser.add_argument("--quick", action="store_true", help="50 + 50 jobs")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="default: settings.poller.concurrency"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.latency_ms)
        return 0
    n_openai = 50 if args.quick else args.jobs
    n_together = 50 if args.quick else args.together_jobs
    n_jobs = n_openai + n_together

    home = Path(tempfile.mkdtemp(prefix="ftm-bench-poll-"))
    emulator = Emulator(args.latency_ms)
    os.environ.update(
        {
            "FTM_HOME": str(home),
            "FTM_OPENAI__SANDBOX": "true",
            "FTM_OPENAI__SANDBOX_URL": emulator.base_url,
            "FTM_PROVIDERS__TOGETHER__SANDBOX": "true",
            "FTM_PROVIDERS__TOGETHER__SANDBOX_URL": emulator.together_url,
        }
    )
    try:
        from app import database
        from app.jobs.launch import launch_job
        from app.jobs.poller import Poller
        from app.settings import PollerSettings, get_settings

        database.reset()
        engine = database.get_engine()
        make_dataset(engine, home)
        started = time.perf_counter()

        def launch(i: int):
            if i < n_openai:
                hp = {"n_epochs": 25, "batch_size": 1}
                return launch_job("openai", "bench", MODEL, suffix=f"b{i}", hyperparameters=hp)
            hp = {"n_epochs": 20, "batch_size": 8}  # 40 rows: 5 steps an epoch
            return launch_job("together", "bench", TOGETHER_MODEL, hyperparameters=hp)

        # Both SDKs import httpx; importing them for the first time from 16 threads at once
        # can hand one thread a half-imported httpx: import them here, once.
        import openai  # noqa: F401
        import together  # noqa: F401

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(launch, range(n_jobs)))
        print(
            f"launched {n_openai} OpenAI + {n_together} Together jobs in "
            f"{time.perf_counter() - started:.1f} s "
            f"(emulator latency {args.latency_ms:.0f} ms per request)"
        )
        emulator.ask("advance 12")  # validation, queue, then 10 training steps each

        base = get_settings().poller
        concurrency = args.concurrency or base.concurrency
        # the per-provider rate limit protects the real API; the emulator needs none
        fast = PollerSettings(
            concurrency=concurrency, requests_per_second=100_000, stall_after_s=base.stall_after_s
        )
        one_by_one = PollerSettings(
            concurrency=1, requests_per_second=100_000, stall_after_s=base.stall_after_s
        )
        poller, sequential = Poller(engine, settings=fast), Poller(engine, settings=one_by_one)

        t_first, r_first = cycle(poller)
        print(
            f"cycle 1 (history)      : {t_first:7.2f} s, {r_first.refreshed} jobs, "
            f"{r_first.events_fetched} events fetched"
        )
        t_seq, r_seq = cycle(sequential)
        print(
            f"baseline, one by one   : {t_seq:7.2f} s, {r_seq.refreshed} jobs, "
            f"{r_seq.events_fetched} events fetched"
        )
        t_conc, r_conc = cycle(poller)
        print(
            f"concurrent ({concurrency:>3})       : {t_conc:7.2f} s, {r_conc.refreshed} jobs, "
            f"{r_conc.events_fetched} events fetched"
        )
        before = emulator.ask("stats")["events"]
        emulator.ask("advance 5")  # a Together epoch is 5 steps: it adds events too
        added = emulator.ask("stats")["events"] - before
        t_new, r_new = cycle(poller)
        print(
            f"after 5 more steps     : {t_new:7.2f} s, {r_new.refreshed} jobs, "
            f"{r_new.events_fetched} events fetched; the emulators added {added} "
            "(only the new ones)"
        )
        stats = emulator.ask("stats")
        print(
            f"emulator holds {stats['jobs']} jobs, {stats['events']} events; "
            f"recorded by ftm: {r_first.events_recorded + r_new.events_recorded} provider "
            "events (+ ftm's own status events)"
        )
        poller.close()
        sequential.close()

        ratio = t_seq / t_conc
        ok = (
            ratio >= TARGET_RATIO
            and r_seq.errors == r_conc.errors == 0
            and r_new.events_fetched == added > 0
            and r_seq.events_fetched == 0
            and r_conc.events_fetched == 0
        )
        print(
            f"speed-up: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x) -> {'PASS' if ok else 'FAIL'}"
        )
        return 0 if ok else 1
    finally:
        emulator.close()


if __name__ == "__main__":
    sys.exit(main())
