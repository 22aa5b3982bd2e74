"""The batched request log: every entry lands once, whatever the concurrency, the
replays or a crash; the queue is bounded; a database error does not stop the writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from sqlmodel import func, select

from app.gateway.request_log import RequestLog
from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import Deployment, GatewayRequest, utcnow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _db(tmp_path, name="log.db"):
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    migrate.upgrade(engine)
    with write_session(engine) as s:
        dep = Deployment(provider="together", model="m", kind="dedicated", state="running")
        s.add(dep)
        s.flush()
        return engine, dep.id


def _served(engine, dep_id):
    with read_session(engine) as s:
        d = s.get(Deployment, dep_id)
        rows = s.exec(select(func.count()).select_from(GatewayRequest)).one()
    return rows, d.requests_served, d.last_request_at


def test_concurrent_records_all_land_once_and_count_once_on_the_deployment(tmp_path):
    engine, dep = _db(tmp_path)
    log = RequestLog(engine, flush_interval_s=0.01, max_batch=100)
    start = utcnow()

    def client(t: int) -> None:
        for i in range(400):
            log.record(
                {
                    "request_id": f"{t}-{i}",
                    "status_code": 200,
                    "deployment_id": dep,
                    "created_at": start + timedelta(milliseconds=i),
                }
            )

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert (log.dropped, log.pending) == (0, 0)
    rows, served, last = _served(engine, dep)
    assert (rows, served) == (3200, 3200)
    assert last.replace(tzinfo=None) == (start + timedelta(milliseconds=399)).replace(tzinfo=None)

    again = RequestLog(engine)  # the same request ids again: a replay logs nothing twice
    for i in range(400):
        again.record({"request_id": f"0-{i}", "status_code": 200, "deployment_id": dep})
    again.record({"request_id": "new", "status_code": 200, "deployment_id": dep})
    again.close()
    assert _served(engine, dep)[:2] == (3201, 3201)
    assert again.written == 1


def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_queue_is_bounded_and_a_database_error_keeps_the_batch(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'late.db'}")  # no tables yet: writes fail
    log = RequestLog(engine, flush_interval_s=0.01, max_pending=10)
    for i in range(15):
        log.record({"request_id": f"secret-prompt-{i}", "status_code": 200})
    assert log.dropped == 5  # beyond the bound: dropped, never blocking the caller
    _until(lambda: log.failed_flushes >= 2)  # the writer thread failed, and lives on
    assert log.pending == 10  # kept for the next flush
    migrate.upgrade(engine)
    _until(lambda: log.pending == 0)  # the same thread wrote them once the table existed
    log.close()
    with read_session(engine) as s:
        ids = sorted(r.request_id for r in s.exec(select(GatewayRequest)))
    assert ids == sorted(f"secret-prompt-{i}" for i in range(10))
    logged = caplog.text
    assert "no such table: gateway_requests" in logged and "dropped" in logged
    assert "secret-prompt" not in logged and "INSERT" not in logged  # no statement, no data


def test_a_killed_writer_loses_at_most_the_unflushed_entries_and_logs_none_twice(tmp_path):
    engine, dep = _db(tmp_path)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    flushed, unflushed = 300, 200
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gateway.crash_writer",
            url,
            str(flushed),
            str(unflushed),
            str(dep),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == f"flushed {flushed}"
        assert proc.stdout.readline().strip() == "recorded"
        os.kill(proc.pid, signal.SIGKILL)  # the writer thread may be mid-batch
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with read_session(engine) as s:
        ids = {r.request_id for r in s.exec(select(GatewayRequest))}
    assert {f"r{i}" for i in range(flushed)} <= ids  # every flushed entry is there
    lost = flushed + unflushed - len(ids)
    assert 0 <= lost <= unflushed
    rows, served, _ = _served(engine, dep)
    assert served == rows == len(ids)  # the counter moved with the rows, none twice

    # The gateway replays what it had (e.g. from its own access log): nothing twice.
    replay = RequestLog(engine)
    for i in range(flushed + unflushed):
        replay.record({"request_id": f"r{i}", "status_code": 200, "deployment_id": dep})
    replay.close()
    assert _served(engine, dep)[:2] == (flushed + unflushed, flushed + unflushed)
