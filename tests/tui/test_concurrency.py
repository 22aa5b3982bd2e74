"""The TUI, `ftm watch`, two local training workers and hosted jobs on the emulator write
to one database (SQLite or PostgreSQL, whichever the suite runs on) at once: no lock error
reaches the user, no event is lost, none is stored twice.

A short run of bench/concurrent_writers.py (the bench runs minutes; see its docstring).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_concurrent_writers_lose_nothing_and_never_report_a_locked_database(database_url):
    # PostgreSQL: the session's server, a fresh database of this test's; SQLite: the bench's
    # own file in its own FTM_HOME.
    on = ["--database", "sqlite"]
    if database_url.startswith("postgresql"):
        on = ["--database", "postgresql", "--url", database_url]
    run = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "concurrent_writers.py"),
            "--seconds",
            "12",
            "--epochs",
            "2",
            "--settle",
            "150",
            *on,
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO_ROOT,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    assert "OK: no lock error reached the user, no event lost, none twice" in out
    figures = json.loads(out.strip().splitlines()[-1])
    stored, remote = figures["hosted_events"]
    assert remote > 0 and stored == remote
    stored_steps, logged_steps = figures["local_steps"]
    assert logged_steps > 0 and stored_steps == logged_steps
    assert figures["locked"] == 0 and figures["duplicates"] == 0
