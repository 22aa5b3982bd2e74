"""Two `ftm serve` gateways, two processes, on one database (SQLite or PostgreSQL,
whichever the suite runs on): requests sent to both at once are logged once each, none
lost; a promotion committed by a third process is what both answer with next (each
gateway's change signal sees another process's commit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
from sqlmodel import select

from app.database import get_engine
from app.gateway import keys
from app.sandbox.server import SandboxServer
from db.engine import read_session
from db.models import GatewayRequest
from tests.gateway.test_serve import NEW, OLD, promote

REPO = Path(__file__).resolve().parents[2]
LAUNCH = "from app.cli.main import main; main()"
PER_GATEWAY = 12


def test_two_gateways_log_each_request_once_and_both_see_a_promotion(tmp_path: Path) -> None:
    engine = get_engine()
    key = keys.create(engine, "two-gateways").key
    promote(engine, "tickets", "production", OLD)
    with SandboxServer(port=0, data_dir=tmp_path / "sandbox") as emulator:
        env = os.environ | {
            "FTM_PROVIDERS__OPENAI__SANDBOX": "true",
            "FTM_PROVIDERS__OPENAI__SANDBOX_URL": emulator.base_url,
            "PYTHONPATH": str(REPO),
        }
        gateways = [
            subprocess.Popen(
                [sys.executable, "-c", LAUNCH, "serve", "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
            for _ in range(2)
        ]
        try:
            clients = []
            for g in gateways:
                line = g.stdout.readline()
                assert line.startswith("ftm gateway serving on http://127.0.0.1:"), (
                    line + g.stderr.read()
                )
                port = line.split(":")[2].split("/")[0]
                clients.append(
                    openai.OpenAI(
                        base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0
                    )
                )

            def ask(client: openai.OpenAI) -> tuple[str, str]:
                answer = client.chat.completions.with_raw_response.create(
                    model="tickets", messages=[{"role": "user", "content": "hello"}]
                )
                return answer.headers["x-request-id"], answer.parse().model

            with ThreadPoolExecutor(8) as pool:  # both gateways at once, several each
                before = list(pool.map(ask, clients * PER_GATEWAY))
            promote(engine, "tickets", "production", NEW)  # committed by this process
            after = [ask(c) for c in clients]
            for g in gateways:
                g.send_signal(signal.SIGTERM)  # flushes the request log
            stderrs = [g.communicate(timeout=30)[1] for g in gateways]
        finally:
            for g in gateways:
                if g.poll() is None:
                    g.kill()
    assert [g.returncode for g in gateways] == [0, 0], stderrs
    assert {model for _, model in before} == {OLD}
    assert [model for _, model in after] == [NEW, NEW]  # no gateway kept the old route
    sent = [request_id for request_id, _ in before + after]
    with read_session(engine) as session:
        logged = list(session.exec(select(GatewayRequest.request_id)))
    assert len(logged) == len(set(logged))  # none twice
    assert sorted(logged) == sorted(sent)  # none lost, nothing else
