"""The whole serving path on this machine: two PEFT adapters on the tiny base, promoted,
deployed with `app.deployments.service.deploy` (one local transformers server for both),
and asked through `ftm serve`'s gateway with the openai SDK. The alias is resolved per
request, so a promotion reaches the very next request; streaming goes through token by
token; the request log carries the deployment, whose served count and last request move.
"""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest
from sqlmodel import select

from app.database import get_engine
from app.deployments import service
from app.gateway import keys
from app.gateway.runner import GatewayServer
from app.gateway.server import Gateway
from app.promotion import aliases
from db.engine import read_session, write_session
from db.models import Deployment, EvalRun, GatewayRequest
from providers.local.serving.server_dir import ServerDir
from tests.local.test_serving import _random_adapter
from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)

QUESTION = [{"role": "user", "content": "What is the weather like today?"}]


def _promote(engine, alias: str, adapter: str) -> None:
    with write_session(engine) as session:
        run = EvalRun(
            task="weather",
            candidate_kind="fine_tuned",
            provider="local",
            model=adapter,
            status="done",
        )
        session.add(run)
    aliases.promote(
        engine, task="weather", alias=alias, run_id=run.id, who="t", why="t", override=True
    )


def _ask(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=8)
    return answer.choices[0].message.content


@pytest.mark.slow
def test_the_gateway_serves_promoted_adapters_from_a_local_server(
    tiny_model: Path,  # noqa: F811
    ftm_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FTM_PROVIDERS__LOCAL__PYTHON", sys.executable)
    engine = get_engine()
    first, second = (
        _random_adapter(tiny_model, ftm_home / "adapters" / name, seed)
        for name, seed in (("first", 1), ("second", 2))
    )
    _promote(engine, "production", first)
    _promote(engine, "staging", second)
    try:
        production = service.deploy(engine, "weather")
        staging = service.deploy(engine, "weather:staging")
        rows = {row.model: row for row in _deployments(engine)}
        assert set(rows) == {first, second}
        assert {r.kind for r in rows.values()} == {"local"}
        assert rows[first].endpoint_url == rows[second].endpoint_url  # one server, one base
        assert rows[first].served_name != rows[second].served_name
        assert production and staging

        key = keys.create(engine, "app").key
        with GatewayServer(Gateway(engine, idle_check_s=None)) as gateway:
            client = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
            direct = openai.OpenAI(base_url=rows[first].endpoint_url, api_key="x")
            expected = {model: _ask(direct, rows[model].served_name) for model in (first, second)}
            assert expected[first] != expected[second]  # the adapters answer differently

            assert _ask(client, "weather") == expected[first]
            assert _ask(client, "weather:staging") == expected[second]
            chunks = list(
                client.chat.completions.create(
                    model="weather", messages=QUESTION, max_tokens=8, stream=True
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == expected[first] and len(chunks) >= 3  # token by token

            _promote(engine, "production", second)  # reaches the next request
            assert _ask(client, "weather") == expected[second]
            gateway.gateway.log.flush()

        with read_session(engine) as session:
            logged = session.exec(select(GatewayRequest).order_by(GatewayRequest.id)).all()
            served = {row.model: row for row in session.exec(select(Deployment))}
        assert [(r.alias, r.model, r.status_code) for r in logged] == [
            ("production", first, 200),
            ("staging", second, 200),
            ("production", first, 200),
            ("production", second, 200),
        ]
        assert [r.deployment_id for r in logged] == [
            rows[first].id,
            rows[second].id,
            rows[first].id,
            rows[second].id,
        ]
        assert all(r.completion_tokens and r.prompt_tokens for r in logged)
        assert (served[first].requests_served, served[second].requests_served) == (2, 2)
        assert served[first].last_request_at is not None
    finally:
        for row in _deployments(engine):
            if row.state == "running":
                service.stop(engine, row.id)
        for server in ftm_home.glob("**/server.pid"):
            ServerDir(server.parent).signal_worker(9)


def _deployments(engine) -> list[Deployment]:
    with read_session(engine) as session:
        return list(session.exec(select(Deployment).order_by(Deployment.id)))
