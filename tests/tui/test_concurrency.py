"""The TUI, `ftm watch`, two local training workers and hosted jobs on the emulator write
to one SQLite database at once: no lock error reaches the user and no event is lost.

A short run of bench/concurrent_writers.py (the bench runs minutes; see its docstring).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_concurrent_writers_lose_nothing_and_never_report_a_locked_database():
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
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO_ROOT,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    assert "OK: no lock error reached the user, no event lost" in out
    figures = json.loads(out.strip().splitlines()[-1])
    stored, remote = figures["hosted_events"]
    assert remote > 0 and stored == remote
    stored_steps, logged_steps = figures["local_steps"]
    assert logged_steps > 0 and stored_steps == logged_steps
    assert figures["locked"] == 0
