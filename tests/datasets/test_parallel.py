"""A large file is scanned in parts by worker processes; the report is the same as one
inline pass."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from app.datasets import check
from tests.datasets.helpers import chat, write_jsonl

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_parallel_scan_matches_inline(tmp_path, monkeypatch, start_method):
    rows = [chat(i, reply=("a", "b")[i % 2] if i % 5 else f"reply {i}") for i in range(400)]
    rows[150] = rows[20]  # an exact duplicate across parts
    path = write_jsonl(tmp_path / "d.jsonl", rows, raw_lines={3: b"oops", 399: b"[]"})
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    inline = check.check_file(path, workers=0)
    # fork where this process has no other thread (the CLI), spawn where it has (the TUI)
    monkeypatch.setattr(check, "_process_context", lambda mp: mp.get_context(start_method))
    monkeypatch.setattr(check, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(check, "PART_BYTES", 4096)  # many parts, lines split across them
    assert len(check._part_bounds(path, path.stat().st_size, 4096)) > 5
    parallel = check.check_file(path, workers=2)
    a, b = inline.to_dict(), parallel.to_dict()
    a.pop("elapsed_s"), b.pop("elapsed_s")
    assert a == b
    assert np.array_equal(inline.arrays.tokens, parallel.arrays.tokens)
    assert np.array_equal(inline.arrays.lines, parallel.arrays.lines)
    assert [p.line for p in parallel.problems if p.category == "duplicate_example"] == [151]
    assert {p.line for p in parallel.problems if p.category in ("invalid_json", "data_type")} == {
        3,
        399,
    }


def test_fork_only_without_other_threads():
    import subprocess
    import sys
    import threading

    # A fresh interpreter (the CLI's case) runs no other thread; this test process may
    # have threads left by earlier tests, so the fork case is checked in a subprocess.
    code = (
        "import multiprocessing\n"
        "from app.datasets import check\n"
        "print(check._process_context(multiprocessing).get_start_method())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "fork"
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert check._process_context(multiprocessing).get_start_method() == "spawn"
    finally:
        stop.set()
        thread.join()
