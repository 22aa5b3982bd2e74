"""Four writers on one database at once: no lock error, no lost event, none twice.

For ``--seconds`` (default 180) these run together against one fresh FTM_HOME and one
fresh database (SQLite in FTM_HOME, or PostgreSQL: ``--database``):

- the TUI (headless, App.run_test) with its in-app poller, while keys are pressed;
- a separate ``ftm watch`` process (the real CLI) polling the same jobs;
- two local training workers (providers.local, real training of a tiny Llama built here,
  ``logging_steps=1`` so every step writes a metric point); each slot launches a new job
  when its job ends, until the time is up;
- hosted jobs on the OpenAI emulator (app.sandbox, real HTTP), a few in flight at a time,
  which both pollers refresh, recording events and metrics.

Then it waits for every job to end and checks:

- no lock error anywhere ("database is locked", a lock timeout, a deadlock): the watch
  process's output, the workers' logs, the TUI's notifications and poll reports, this
  process's log records;
- no event lost: for every hosted job, the events in the database are exactly the
  emulator's events (fetched with the openai SDK at the end); for every local job, the
  steps with a metric point in the database are exactly the steps the worker logged;
- none twice: no event or metric point stored twice, no job created twice at the emulator.

It prints the counts, events (events and metric points) written per second, and the lost
and duplicate counts; the exit status is 1 if a check failed. ``--database both`` runs it
on SQLite, then on PostgreSQL (each in a process of its own) and prints them side by side.
PostgreSQL is a throw-away server (Debian's ``postgresql`` package, tests/postgres.py)
unless ``--url`` names one (an empty database it may migrate).

    .venv/bin/python bench/concurrent_writers.py                    # 3 minutes, SQLite
    .venv/bin/python bench/concurrent_writers.py --database both    # both, side by side
    .venv/bin/python bench/concurrent_writers.py --seconds 20       # a short run (the test's)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOCKED = re.compile(
    r"database is locked|database table is locked|lock timeout|deadlock detected",
    re.IGNORECASE,
)
HOSTED_IN_FLIGHT = 3
LOCAL_SLOTS = 2


class LockedRecords(logging.Handler):
    """Counts log records of this process that mention a locked database."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if LOCKED.search(record.getMessage()):
            self.count += 1


def prepare(home: Path) -> tuple[int, Path]:
    """A dataset of the labelling task (through the real intake) and the tiny model."""
    import torch

    from app.datasets.store import add_dataset
    from providers.local import demo_data
    from providers.local.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    model = build_tiny_model(home / "tiny-model", demo_data.corpus_texts())
    source = demo_data.write_jsonl(home / "labels.jsonl", demo_data.labelling_examples(40, 1))
    dataset, _ = add_dataset(source, name="labels", val_fraction=0.2, seed=0)
    return dataset.id, Path(model)


class Launcher(threading.Thread):
    """Keeps hosted jobs in flight and both local worker slots busy until the deadline."""

    def __init__(self, dataset_id: int, model: Path, deadline: float, epochs: int) -> None:
        super().__init__(daemon=True, name="launcher")
        self.dataset_id, self.model, self.deadline, self.epochs = (
            dataset_id,
            model,
            deadline,
            epochs,
        )
        self.hosted: list[int] = []
        self.local: list[int] = []
        self.errors: list[str] = []

    def _active(self, ids: list[int]) -> int:
        from sqlmodel import select

        from app.database import get_engine
        from db.engine import read_session
        from db.models import Job
        from providers.types import TERMINAL_STATUSES

        if not ids:
            return 0
        with read_session(get_engine()) as s:
            rows = s.exec(select(Job.status).where(Job.id.in_(ids))).all()
        return sum(status not in TERMINAL_STATUSES for status in rows)

    def run(self) -> None:
        from app.jobs.launch import LaunchError, launch_job

        while time.monotonic() < self.deadline:
            try:
                while self._active(self.hosted) < HOSTED_IN_FLIGHT:
                    job = launch_job(
                        "openai",
                        self.dataset_id,
                        "gpt-4o-mini-2024-07-18",
                        hyperparameters={"n_epochs": 2},
                        name=f"hosted-{len(self.hosted)}",
                    )
                    self.hosted.append(job.id)
                while self._active(self.local) < LOCAL_SLOTS:
                    job = launch_job(
                        "local",
                        self.dataset_id,
                        str(self.model),
                        method="lora",
                        options={
                            "epochs": self.epochs,
                            "batch_size": 4,
                            "logging_steps": 1,
                            "eval_steps": 5,
                            "torch_threads": 1,
                            "max_seq_len": 128,
                        },
                        name=f"local-{len(self.local)}",
                    )
                    self.local.append(job.id)
            except LaunchError as exc:
                self.errors.append(str(exc))
            time.sleep(0.5)


async def run_tui(seconds: float, launcher: Launcher, settle_s: float) -> dict:
    """The TUI with its poller, pressing keys until the launcher is done and jobs ended."""
    from app.tui.app import create_app
    from app.tui.views.jobs import JobsView

    seen = {"cycles": 0, "poll_errors": 0, "poll_messages": [], "keys": 0}
    counted: set[int] = set()

    def hook(message) -> None:
        # the hook sees a message at every node it bubbles through: count each once
        if isinstance(message, JobsView.PollCycleDone) and id(message.report) not in counted:
            counted.add(id(message.report))
            seen["cycles"] += 1
            seen["poll_errors"] += message.report.errors
            seen["poll_messages"] += message.report.messages

    app = create_app(start_poller=True)
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        launcher.start()
        keys = ["down", "down", "up", "d", "j", "down", "up"]
        end = time.monotonic() + seconds + settle_s
        while time.monotonic() < end:
            await pilot.press(keys[seen["keys"] % len(keys)])
            seen["keys"] += 1
            await asyncio.sleep(0.2)
            if time.monotonic() > launcher.deadline and not launcher.is_alive():
                if launcher._active(launcher.hosted + launcher.local) == 0:
                    break
        notes = [f"{n.title}: {n.message}" for n in app._notifications]
    seen["notifications"] = notes
    return seen


def hosted_event_check(job_ids: list[int], base_url: str) -> tuple[int, int, list[str]]:
    """(events at the emulator, events in the database, problems) over the hosted jobs."""
    import openai
    from sqlmodel import select

    from app.database import get_engine
    from db.engine import read_session
    from db.models import Job, JobEvent

    client = openai.OpenAI(base_url=base_url, api_key="sk-sandbox", max_retries=2)
    remote_total = db_total = 0
    problems = []
    with read_session(get_engine()) as s:
        for job_id in job_ids:
            job = s.get(Job, job_id)
            if job.remote_id is None:
                problems.append(f"hosted job {job_id}: never created ({job.error})")
                continue
            remote = {e.id for e in client.fine_tuning.jobs.list_events(job.remote_id, limit=100)}
            stored = set(
                s.exec(
                    select(JobEvent.provider_event_id).where(
                        JobEvent.job_id == job_id, ~JobEvent.provider_event_id.startswith("ftm:")
                    )
                ).all()
            )
            remote_total += len(remote)
            db_total += len(stored & remote)
            if remote - stored:
                problems.append(f"hosted job {job_id}: {len(remote - stored)} event(s) lost")
            if job.status != "succeeded":
                problems.append(f"hosted job {job_id} ended {job.status}")
    return remote_total, db_total, problems


STEP_LINE = re.compile(r"step (\d+)/\d+")


def local_metric_check(job_ids: list[int]) -> tuple[int, int, int, list[str]]:
    """(steps the workers logged, steps stored, lock lines in worker logs, problems)."""
    from sqlmodel import select

    from app.database import get_engine
    from app.settings import get_settings
    from db.engine import read_session
    from db.models import Job, MetricPoint

    store = get_settings().file_store
    logged_total = stored_total = locked = 0
    problems = []
    with read_session(get_engine()) as s:
        for job_id in job_ids:
            job = s.get(Job, job_id)
            if job.job_dir is None:
                problems.append(f"local job {job_id}: no job directory ({job.status})")
                continue
            log_text = (store.local_path(job.job_dir) / "worker.log").read_text(errors="replace")
            locked += len(LOCKED.findall(log_text))
            logged = {int(m) for m in STEP_LINE.findall(log_text)}
            stored = set(s.exec(select(MetricPoint.step).where(MetricPoint.job_id == job_id)).all())
            logged_total += len(logged)
            stored_total += len(logged & stored)
            if logged - stored:
                problems.append(
                    f"local job {job_id}: steps {sorted(logged - stored)[:5]} not stored"
                )
            if job.status != "succeeded":
                problems.append(f"local job {job_id} ended {job.status}: {job.error}")
    return logged_total, stored_total, locked, problems


def duplicate_check(sandbox, hosted: list[int]) -> int:
    """Rows stored twice (an event, a metric point) plus jobs created twice at the emulator."""
    from sqlalchemy import func, select

    from app.database import get_engine
    from db.engine import read_session
    from db.models import Job, JobEvent, MetricPoint

    with read_session(get_engine()) as s:
        twice = 0
        for model, key in ((JobEvent, JobEvent.provider_event_id), (MetricPoint, MetricPoint.step)):
            groups = (
                select(func.count().label("n"))
                .select_from(model)
                .group_by(model.job_id, key)
                .having(func.count() > 1)
                .subquery()
            )
            # int(): PostgreSQL's sum() is a numeric (a Decimal)
            twice += int(s.scalar(select(func.coalesce(func.sum(groups.c.n - 1), 0))))
        uids = {s.get(Job, job_id).uid for job_id in hosted}
    created = Counter(j.metadata.get("ftm_job_id") for j in sandbox.state.jobs.values())
    return twice + sum(n - 1 for uid, n in created.items() if uid in uids)


def both(args: argparse.Namespace) -> int:
    """Run once per database, each in a process of its own; print them side by side."""
    results = {}
    failed = False
    for database in ("sqlite", "postgresql"):
        command = [sys.executable, __file__, "--database", database]
        command += ["--seconds", str(args.seconds), "--epochs", str(args.epochs)]
        command += ["--settle", str(args.settle)] + (["--url", args.url] if args.url else [])
        print(f"--- {database}", flush=True)
        run = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
        print(run.stdout, end="", flush=True)
        failed |= run.returncode != 0
        last = (run.stdout.strip().splitlines() or ["{}"])[-1]
        results[database] = json.loads(last) if last.startswith("{") else {}
    print(f"{'':24}{'sqlite':>12}{'postgresql':>12}")
    for label, key in (
        ("events written/s", "events_per_s"),
        ("hosted events lost", "lost_events"),
        ("local steps lost", "lost_steps"),
        ("duplicates", "duplicates"),
        ("lock errors", "locked"),
    ):
        print(f"{label:24}" + "".join(f"{results[d].get(key, '-')!s:>12}" for d in results))
    print(json.dumps(results))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long jobs are launched")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each local job")
    parser.add_argument(
        "--settle", type=float, default=240.0, help="most seconds to wait for the last jobs to end"
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default="sqlite",
        help="the database the writers share (both: one run on each, side by side)",
    )
    parser.add_argument(
        "--url", help="a PostgreSQL database to use (default: a throw-away server of its own)"
    )
    args = parser.parse_args()
    if args.database == "both":
        return both(args)
    server = None
    os.environ.pop("FTM_DATABASE_URL", None)  # only what --database says
    if args.database == "postgresql":
        if args.url:
            os.environ["FTM_DATABASE_URL"] = args.url
        else:
            from tests.postgres import PostgresServer

            server = PostgresServer.start()
            os.environ["FTM_DATABASE_URL"] = server.create_database()
    try:
        return run(args)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace) -> int:
    locked_records = LockedRecords()
    logging.getLogger().addHandler(locked_records)
    with tempfile.TemporaryDirectory(prefix="ftm-concurrency-") as tmp:
        home = Path(tmp)
        from app.sandbox.server import SandboxServer

        with SandboxServer(port=0, seconds_per_step=0.05, seed=11) as sandbox:
            env = {
                "FTM_HOME": str(home),
                "FTM_OPENAI__SANDBOX": "true",
                "FTM_OPENAI__SANDBOX_URL": sandbox.base_url,
                "FTM_POLLER__INTERVAL_S": "0.5",
            }
            os.environ.update(env)
            from app import database

            database.reset()
            t0 = time.monotonic()
            dataset_id, model = prepare(home)
            print(f"prepared the dataset and the tiny model in {time.monotonic() - t0:.1f} s")

            watch_out = open(home / "watch.out", "w")
            watch = subprocess.Popen(
                [sys.executable, "-m", "app", "watch", "--interval", "0.5"],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=watch_out,
                stderr=subprocess.STDOUT,
            )
            launcher = Launcher(dataset_id, model, time.monotonic() + args.seconds, args.epochs)
            t0 = time.monotonic()
            tui = asyncio.run(run_tui(args.seconds, launcher, args.settle))
            elapsed = time.monotonic() - t0
            launcher.join(timeout=30)
            watch.send_signal(signal.SIGINT)
            try:
                watch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watch.kill()
            watch_out.close()
            watch_text = (home / "watch.out").read_text(errors="replace")

            remote_events, stored_events, hosted_problems = hosted_event_check(
                launcher.hosted, sandbox.base_url
            )
            logged_steps, stored_steps, worker_locked, local_problems = local_metric_check(
                launcher.local
            )
            duplicates = duplicate_check(sandbox, launcher.hosted)

        from sqlmodel import func, select

        from db.engine import read_session
        from db.models import Job, JobEvent, MetricPoint

        with read_session(database.get_engine()) as s:
            statuses = Counter(s.exec(select(Job.status)).all())
            n_events = s.exec(select(func.count()).select_from(JobEvent)).one()
            n_points = s.exec(select(func.count()).select_from(MetricPoint)).one()
        database.reset()

    watch_locked = len(LOCKED.findall(watch_text))
    watch_tracebacks = watch_text.count("Traceback")
    tui_locked = sum(bool(LOCKED.search(n)) or "Database busy" in n for n in tui["notifications"])
    tui_locked += sum(bool(LOCKED.search(m)) for m in tui["poll_messages"])
    cycles_watch = sum(1 for line in watch_text.splitlines() if " active, " in line)

    print(
        f"ran {elapsed:.0f} s: {len(launcher.hosted)} hosted jobs (emulator) and "
        f"{len(launcher.local)} local jobs (real training), statuses {dict(statuses)}"
    )
    print(
        f"poll cycles: TUI {tui['cycles']}, ftm watch {cycles_watch}; keys pressed in the "
        f"TUI {tui['keys']}; rows written: {n_events:,} events, {n_points:,} metric points"
    )
    events_per_s = (n_events + n_points) / elapsed
    print(
        f"database: {args.database}; {events_per_s:.1f} events/s written (events and metric "
        f"points); {duplicates} stored or created twice"
    )
    print(f"hosted events: {stored_events}/{remote_events} of the emulator's events stored")
    print(
        f"local metric points: {stored_steps}/{logged_steps} of the steps the workers logged stored"
    )
    print(
        f"lock errors (database is locked, lock timeout, deadlock): ftm watch {watch_locked}, "
        f"workers {worker_locked}, TUI {tui_locked}, this process {locked_records.count}; "
        f"watch tracebacks {watch_tracebacks}"
    )
    problems = hosted_problems + local_problems + launcher.errors
    if tui["notifications"]:
        problems += [f"TUI showed: {n}" for n in tui["notifications"] if "launched" not in n]
    total_locked = watch_locked + worker_locked + tui_locked + locked_records.count
    if total_locked or watch_tracebacks:
        problems.append(
            f"{total_locked} locked error(s), {watch_tracebacks} traceback(s) in ftm watch"
        )
    if duplicates:
        problems.append(f"{duplicates} row(s) or job(s) twice")
    if not launcher.hosted or not launcher.local:
        problems.append("a kind of writer never ran")
    for p in problems:
        print(f"PROBLEM: {p}")
    print(
        "OK: no lock error reached the user, no event lost, none twice"
        if not problems
        else f"FAILED: {len(problems)} problem(s)"
    )
    print(
        json.dumps(
            {
                "hosted_events": [stored_events, remote_events],
                "local_steps": [stored_steps, logged_steps],
                "locked": total_locked,
                "database": args.database,
                "events_per_s": round(events_per_s, 1),
                "lost_events": remote_events - stored_events,
                "lost_steps": logged_steps - stored_steps,
                "duplicates": duplicates,
            }
        )
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
