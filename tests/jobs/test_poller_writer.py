"""The poller's writes: one writer thread (never sixteen threads queueing on SQLite's
lock), and in the TUI a writer that rests as long as it writes, so the UI thread gets the
GIL. Observed on the real engine: every write transaction's thread and duration."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import event

from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.settings import PollerSettings
from db.engine import WRITER_OPTION
from tests.jobs.conftest import MODEL, make_dataset

FAST = PollerSettings(concurrency=8, requests_per_second=1000, stall_after_s=3600)


class WriteLog:
    """Each write transaction (taking the writer lock) on ``engine``: thread, start and end."""

    def __init__(self, engine) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self._open: dict[int, tuple[str, float]] = {}
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)
        self.engine = engine

    def _begin(self, conn) -> None:
        if conn.get_execution_options().get(WRITER_OPTION):
            self._open[id(conn)] = (threading.current_thread().name, time.perf_counter())

    def _end(self, conn) -> None:
        opened = self._open.pop(id(conn), None)
        if opened is not None:
            self.spans.append((*opened, time.perf_counter()))

    def close(self) -> None:
        for name, fn in (("begin", self._begin), ("commit", self._end), ("rollback", self._end)):
            event.remove(self.engine, name, fn)


@pytest.fixture
def running_jobs(engine, tmp_path):
    make_dataset(engine, tmp_path)
    return [
        launch_job("openai", "toy", MODEL, suffix=f"w{i}", hyperparameters={"n_epochs": 3})
        for i in range(8)
    ]


def _cycles(poller: Poller, n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            report = await poller.run_once()
            assert report.errors == 0, report.messages

    try:
        asyncio.run(run())
    finally:
        poller.close()


def test_refreshes_are_recorded_by_one_writer_thread(engine, running_jobs):
    log = WriteLog(engine)
    try:
        _cycles(Poller(engine, settings=FAST), 2)
    finally:
        log.close()
    assert len(log.spans) >= len(running_jobs)
    assert {name for name, _, _ in log.spans} == {"ftm-poller-db_0"}
    ordered = sorted(log.spans, key=lambda s: s[1])
    assert all(a[2] <= b[1] for a, b in zip(ordered, ordered[1:], strict=False)), (
        "two write transactions overlapped"
    )


def test_a_writer_share_of_half_rests_as_long_as_it_writes(engine, running_jobs):
    log = WriteLog(engine)
    try:
        _cycles(Poller(engine, settings=FAST, writer_share=0.5), 1)
    finally:
        log.close()
    spans = sorted(log.spans, key=lambda s: s[1])
    assert len(spans) >= len(running_jobs)
    busy = sum(end - start for _, start, end in spans)
    # after each write (but the last) the writer rests at least as long as it wrote
    gaps = [b[1] - a[2] for a, b in zip(spans, spans[1:], strict=False)]
    assert all(
        gap >= (end - start) * 0.99 for gap, (_, start, end) in zip(gaps, spans, strict=False)
    )
    assert spans[-1][2] - spans[0][1] >= 2 * busy - (spans[-1][2] - spans[-1][1])


def test_writer_share_must_be_a_fraction(engine):
    with pytest.raises(ValueError, match="writer_share"):
        Poller(engine, writer_share=0)
