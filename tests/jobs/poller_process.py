"""One poller in a process of its own, for the tests where two race on one database.

    python -m tests.jobs.poller_process GO_FILE JOB_ID... [--ahead S] [--grace S]

It connects to ftm's database (FTM_DATABASE_URL or FTM_HOME, from the environment), says
"ready", waits for GO_FILE to exist (so two processes start their first cycle together,
not a second apart as their imports finish), then polls until every listed job has ended.
Its clock runs ``--ahead`` seconds ahead of the real one (the test's way past a grace
window without waiting it out). Last line: a JSON report of what it recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from app.database import get_engine
from app.jobs.poller import Poller
from app.settings import PollerSettings
from db.engine import read_session
from db.models import Job
from providers.types import TERMINAL_STATUSES

TIMEOUT_S = 90.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("go_file", type=Path)
    parser.add_argument("job_ids", type=int, nargs="+")
    parser.add_argument("--ahead", type=float, default=0.0)
    parser.add_argument("--grace", type=float, default=300.0)
    args = parser.parse_args()

    engine = get_engine()
    ahead = timedelta(seconds=args.ahead)
    poller = Poller(
        engine,
        settings=PollerSettings(unconfirmed_grace_s=args.grace, requests_per_second=500),
        now=lambda: datetime.now(UTC) + ahead,
        backoff_base_s=0.01,
    )

    def all_ended() -> bool:
        with read_session(engine) as s:
            statuses = s.exec(select(Job.status).where(Job.id.in_(args.job_ids))).all()
        return all(status in TERMINAL_STATUSES for status in statuses)

    print("ready", flush=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not args.go_file.exists():  # a start line shared with the other process
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.002)

    totals = {"cycles": 0, "events_recorded": 0, "errors": 0, "messages": [], "seconds": 0.0}
    started = time.monotonic()

    async def run() -> None:
        while time.monotonic() < deadline:
            report = await poller.run_once()
            totals["cycles"] += 1
            totals["events_recorded"] += report.events_recorded
            totals["errors"] += report.errors
            totals["messages"] += report.messages
            if all_ended():
                return
            await asyncio.sleep(0.02)

    asyncio.run(run())
    poller.close()
    totals["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
