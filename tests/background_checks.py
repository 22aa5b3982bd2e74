"""House-tooling checks started in the background when the session begins.

The suite runs one test at a time, so on a 2-core machine one core idles through most
of it. mypy (about 35 s of CPU) runs there instead: started once the session knows its
test is selected, collected by that test, which then waits only for what is left.
Nothing is skipped or weakened: the same command, the same assertion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 280

_running: dict[tuple[str, ...], subprocess.Popen[str]] = {}


def start(*args: str) -> None:
    """Start ``python -m ARGS`` in the repository, unless already started."""
    if args not in _running:
        _running[args] = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def result(*args: str) -> subprocess.CompletedProcess[str]:
    """The outcome of ``python -m ARGS``: the background run's if one was started, else
    run now."""
    process = _running.pop(args, None)
    if process is None:
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_all() -> None:
    """Kill what no test collected (a run stopped early, a deselected test)."""
    for process in _running.values():
        process.kill()
        process.wait()
    _running.clear()
