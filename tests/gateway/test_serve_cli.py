"""`ftm serve` as a user runs it: a process that prints its URL, warns when it listens
beyond loopback, answers, and on SIGTERM flushes the request log before it exits; killed
outright, it loses no more than its unflushed batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai
from sqlmodel import select

from app.database import get_engine
from app.gateway import keys
from app.sandbox.server import SandboxServer
from db.engine import read_session
from db.models import GatewayRequest
from tests.gateway.test_serve import OLD, promote

REPO = Path(__file__).resolve().parents[2]
LAUNCH = "from app.cli.main import main; main()"


def test_serve_prints_its_url_warns_off_loopback_and_flushes_the_log_on_sigterm(
    tmp_path: Path,
) -> None:
    engine = get_engine()
    key = keys.create(engine, "cli-app").key
    promote(engine, "tickets", "production", OLD)
    with SandboxServer(port=0, data_dir=tmp_path / "sandbox") as emulator:
        env = os.environ | {
            "FTM_PROVIDERS__OPENAI__SANDBOX": "true",
            "FTM_PROVIDERS__OPENAI__SANDBOX_URL": emulator.base_url,
            "PYTHONPATH": str(REPO),
        }
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "serve", "--host", "0.0.0.0", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        watchdog = threading.Timer(60, process.kill)  # a hung start fails, never hangs
        watchdog.start()
        try:
            line = process.stdout.readline()
            assert line.startswith("ftm gateway serving on http://0.0.0.0:"), (
                line + process.stderr.read()
            )
            port = line.split(":")[2].split("/")[0]
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0
            )
            answer = client.chat.completions.with_raw_response.create(
                model="tickets", messages=[{"role": "user", "content": "hello"}]
            )
            assert answer.parse().model == OLD
            process.send_signal(signal.SIGTERM)  # at once: the log has not flushed yet
            _, stderr = process.communicate(timeout=30)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr
    assert "warning: listening on 0.0.0.0, not loopback" in stderr
    request_id = answer.headers["x-request-id"]
    with read_session(engine) as session:
        row = session.exec(
            select(GatewayRequest).where(GatewayRequest.request_id == request_id)
        ).one()
    assert (row.task, row.model, row.status_code, row.key_name) == ("tickets", OLD, 200, "cli-app")


def test_a_killed_gateway_loses_only_its_unflushed_batch_and_logs_nothing_twice(
    tmp_path: Path,
) -> None:
    """SIGKILL, no shutdown at all: every request answered before the log's last flush is
    in the database once; what was answered after it (at most one flush interval's worth,
    README "The request log") may be missing; a new gateway on the same database logs on."""
    import time

    from app.gateway.request_log import FLUSH_INTERVAL_S

    engine = get_engine()
    key = keys.create(engine, "crash-app").key
    promote(engine, "tickets", "production", OLD)
    flush_s = FLUSH_INTERVAL_S  # what the gateway runs with

    def ids_logged() -> list[str]:
        with read_session(engine) as session:
            return list(session.exec(select(GatewayRequest.request_id)))

    def ask(port: str, n: int) -> list[str]:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        out = []
        for _ in range(n):
            answer = client.chat.completions.with_raw_response.create(
                model="tickets", messages=[{"role": "user", "content": "hello"}]
            )
            out.append(answer.headers["x-request-id"])
        return out

    with SandboxServer(port=0, data_dir=tmp_path / "sandbox") as emulator:
        env = os.environ | {
            "FTM_PROVIDERS__OPENAI__SANDBOX": "true",
            "FTM_PROVIDERS__OPENAI__SANDBOX_URL": emulator.base_url,
            "PYTHONPATH": str(REPO),
        }

        def start() -> tuple[subprocess.Popen, str]:
            process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, "serve", "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=REPO,
            )
            line = process.stdout.readline()
            assert line.startswith("ftm gateway serving on http://127.0.0.1:"), line
            return process, line.split(":")[2].split("/")[0]

        first, port = start()
        try:
            flushed = ask(port, 20)
            deadline = time.monotonic() + 30
            while not set(flushed) <= set(ids_logged()):  # the writer's interval passes
                assert time.monotonic() < deadline, "the first requests were never flushed"
                time.sleep(flush_s / 2)
            unflushed = ask(port, 5)
            first.kill()  # at once: the last 5 are most likely still queued
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()

        logged = ids_logged()
        assert len(logged) == len(set(logged))  # nothing twice
        assert set(flushed) <= set(logged)  # nothing flushed was lost
        assert set(logged) <= set(flushed) | set(unflushed)

        second, port = start()  # the same database, a new gateway: it logs on
        try:
            after = ask(port, 3)
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
    logged = ids_logged()
    assert set(after) <= set(logged) and len(logged) == len(set(logged))
