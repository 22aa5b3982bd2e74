"""`ftm serve` over real HTTP: the openai SDK as the client, the gateway in front of the
OpenAI emulator on loopback ports, aliases moved through the real promotion API.

One emulator and three gateways per module (starting each costs a few ms; requests are
what the tests spend):
- ``direct``: the OpenAI provider pointed at the emulator, the real route resolution;
- ``steered``: the provider pointed at a tiny SSE upstream in front of the emulator, for
  what the emulator does not do (a stream that trickles, a refusal quoting the key), the
  route changed per test (a shadow, a stopped deployment);
- ``complete_only``: a provider with no OpenAI-compatible upstream, answered through
  `Provider.complete`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.database import engine_for
from app.gateway import keys, routing
from app.gateway.provider_pool import ProviderPool
from app.gateway.request_log import RequestLog
from app.gateway.runner import GatewayServer
from app.gateway.server import Gateway
from app.promotion import aliases
from app.sandbox.faults import FaultPlan
from app.sandbox.server import SandboxServer
from db.engine import read_session, write_session
from db.models import EvalRun, GatewayRequest
from providers.openai import OpenAIConfig, OpenAIProvider

PROVIDER_KEY = "sk-provider-secret-0123456789abcdef"
OLD, NEW, CANDIDATE = "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14"
SLOW_MODEL = "slow-stream"
"""A model the test upstream streams slowly (a chunk every 100 ms, 50 of them)."""
ECHO_KEY_MODEL = "echo-key-401"
"""A model the test upstream refuses with a message quoting the key it was sent, as real
services do ("Incorrect API key provided: sk-...")."""


def promote(engine, task: str, alias: str, model: str):
    """Point ``task:alias`` at ``model`` through the promotion API (an eval run of it,
    promoted with an override: the gates are not what these tests are about)."""
    with write_session(engine) as session:
        run = EvalRun(
            task=task, candidate_kind="fine_tuned", provider="openai", model=model, status="done"
        )
        session.add(run)
    row, _ = aliases.promote(
        engine, task=task, alias=alias, run_id=run.id, who="test", why="gateway test", override=True
    )
    return row


def sse_upstream(emulator_url: str) -> Starlette:
    """An OpenAI-compatible upstream that streams: it asks the emulator for the whole
    answer and sends it word by word as chat.completion.chunk events, with the usage
    chunk when asked for it, as OpenAI does."""
    client = httpx.AsyncClient()

    async def chat(request: Request) -> Response:
        body = await request.json()
        auth = request.headers.get("authorization", "")
        if body.get("model") == ECHO_KEY_MODEL:
            message = f"Incorrect API key provided: {auth.split()[-1]}."
            return JSONResponse({"error": {"message": message, "code": "invalid_api_key"}}, 401)
        if body.get("model") == SLOW_MODEL:
            return StreamingResponse(slowly(), media_type="text/event-stream")
        stream = body.pop("stream", False)
        usage_asked = (body.pop("stream_options", None) or {}).get("include_usage")
        answer = await client.post(
            f"{emulator_url}/chat/completions", json=body, headers={"authorization": auth}
        )
        if not stream or answer.status_code != 200:
            return Response(answer.content, answer.status_code, media_type="application/json")
        data = answer.json()
        words = re.findall(r"\S+\s*", data["choices"][0]["message"]["content"])
        base = {"id": data["id"], "object": "chat.completion.chunk", "model": data["model"]}
        base["created"] = data["created"]
        extra = {"usage": None} if usage_asked else {}

        async def events() -> Iterator[bytes]:
            chunks = [
                base | {"choices": [{"index": 0, "delta": {"content": w}}]} | extra for w in words
            ]
            chunks.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if usage_asked:
                chunks.append(base | {"choices": [], "usage": data["usage"]})
            for chunk in chunks:
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def slowly():
        for index in range(50):
            chunk = {"id": "slow", "object": "chat.completion.chunk", "model": SLOW_MODEL}
            chunk["choices"] = [{"index": 0, "delta": {"content": f"{index} "}}]
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            await asyncio.sleep(0.1)
        yield b"data: [DONE]\n\n"

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


class Steer:
    """The real route, changed by ``change`` when a test sets it."""

    def __init__(self) -> None:
        self.change = None

    def __call__(self, engine, model: str, draw: float | None = None):
        plan = routing.plan(engine, model)
        return self.change(plan) if self.change else plan


class WatchedLog:
    """The real request log, with the shadow answers it is handed kept for the test."""

    def __init__(self, engine) -> None:
        self.inner = RequestLog(engine)
        self.shadows: list[dict] = []

    def record(self, entry: dict) -> None:
        self.inner.record(entry)

    def record_shadow(self, **answer) -> None:
        self.shadows.append(answer)
        self.inner.record_shadow(**answer)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class CompleteOnly(OpenAIProvider):
    """A provider without an OpenAI-compatible endpoint (the contract's default)."""

    def upstream(self, model, deployment=None):
        return None


@dataclasses.dataclass
class Stack:
    engine: object
    emulator: SandboxServer
    key: str
    direct: GatewayServer
    steered: GatewayServer
    complete_only: GatewayServer
    steer: Steer
    watched: WatchedLog

    def client(self, server: GatewayServer, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=server.base_url, api_key=key or self.key, max_retries=0)

    def rows(self, *request_ids: str) -> dict[str, GatewayRequest]:
        for server in (self.direct, self.steered, self.complete_only):
            server.gateway.log.flush()
        with read_session(self.engine) as session:
            query = select(GatewayRequest).where(GatewayRequest.request_id.in_(request_ids))
            return {row.request_id: row for row in session.exec(query)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("gateway")
    engine = engine_for(f"sqlite:///{home / 'ftm.db'}")
    key = keys.create(engine, "test-app").key
    promote(engine, "tickets", "production", OLD)
    promote(engine, "tickets", "staging", CANDIDATE)

    def pool(url: str, cls=OpenAIProvider) -> ProviderPool:
        config = OpenAIConfig(sandbox=True, sandbox_url=url, api_key=PROVIDER_KEY)
        return ProviderPool(engine, lambda name: cls(config))

    steer, watched = Steer(), WatchedLog(engine)
    with SandboxServer(port=0, seed=7, data_dir=home / "sandbox") as emulator:
        upstream = GatewayServer(type("App", (), {"app": sse_upstream(emulator.base_url)}))
        gateways = [
            Gateway(engine, providers=pool(emulator.base_url)),
            Gateway(engine, providers=pool(""), planner=steer, request_log=watched),
            Gateway(engine, providers=pool(emulator.base_url, CompleteOnly)),
        ]
        with upstream:
            gateways[1].providers = pool(upstream.base_url)
            with (
                GatewayServer(gateways[0]) as direct,
                GatewayServer(gateways[1]) as steered,
                GatewayServer(gateways[2]) as complete_only,
            ):
                yield Stack(engine, emulator, key, direct, steered, complete_only, steer, watched)


@pytest.fixture
def steer(stack: Stack) -> Iterator[Steer]:
    yield stack.steer
    stack.steer.change = None


def ask(client: openai.OpenAI, model: str, text: str = "Where is my refund?", **kw):
    messages = [{"role": "user", "content": text}]
    return client.chat.completions.with_raw_response.create(model=model, messages=messages, **kw)


# ------------------------------------------------------------------ answering


def test_task_and_task_alias_reach_their_holders_and_are_logged(stack: Stack) -> None:
    client = stack.client(stack.direct)
    production = ask(client, "tickets")
    staging = ask(client, "tickets:staging", max_tokens=5)
    assert production.parse().model == OLD and OLD in production.parse().choices[0].message.content
    assert staging.parse().model == CANDIDATE
    assert staging.parse().choices[0].finish_reason == "length"  # the body went on unchanged

    listed = [m.id for m in client.models.list().data]
    assert {"tickets:production", "tickets:staging"} <= set(listed)

    rows = stack.rows(production.headers["x-request-id"], staging.headers["x-request-id"])
    first, second = rows[production.headers["x-request-id"]], rows[staging.headers["x-request-id"]]
    assert (first.task, first.alias, first.provider, first.model) == (
        "tickets",
        "production",
        "openai",
        OLD,
    )
    assert (second.alias, second.model, second.completion_tokens) == ("staging", CANDIDATE, 5)
    usage = production.parse().usage
    assert (first.prompt_tokens, first.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert first.key_name == "test-app" and first.status_code == 200 and first.route == "primary"
    assert first.cost_usd is not None and first.cost_usd > 0  # the catalog's gpt-4o-mini price
    assert first.latency_ms > 0


def test_promotion_and_rollback_reach_the_next_request_mid_traffic(stack: Stack) -> None:
    """A thread keeps sending; every request that starts after the promotion commits gets
    the new holder, and after the rollback the old one again (no restart)."""
    promote(stack.engine, "traffic", "production", OLD)
    client = stack.client(stack.direct)
    ask(client, "traffic")  # the first request pays for connecting: not part of the race
    seen: list[tuple[float, float, str]] = []  # (started, ended, who answered)
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            model = ask(client, "traffic").parse().model
            seen.append((started, time.perf_counter(), model))

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(0.4)
        promoting = time.perf_counter()
        promote(stack.engine, "traffic", "production", NEW)
        promoted = time.perf_counter()
        time.sleep(0.4)
        rolling_back = time.perf_counter()
        aliases.rollback(stack.engine, task="traffic", alias="production", who="test")
        rolled_back = time.perf_counter()
        time.sleep(0.4)
    finally:
        stop.set()
        sender.join()
    # A request in flight while an alias moved may get either holder; one that started
    # after the commit returned must get the new one.
    before = [m for _, end, m in seen if end < promoting]
    after_promotion = [m for start, end, m in seen if start > promoted and end < rolling_back]
    after_rollback = [m for start, _, m in seen if start > rolled_back]
    assert len(before) > 2 and len(after_promotion) > 2 and len(after_rollback) > 2, seen
    assert set(before) == {OLD}
    assert set(after_promotion) == {NEW}, "a request after the promotion got the old holder"
    assert set(after_rollback) == {OLD}, "a request after the rollback got the new holder"


# ------------------------------------------------------------------ errors


def test_refusals_are_openai_error_bodies_and_are_logged(stack: Stack) -> None:
    client = stack.client(stack.direct)
    with pytest.raises(openai.NotFoundError) as unknown:
        ask(client, "tickets:canary")
    error = unknown.value.body
    assert unknown.value.code == "model_not_found" and error["param"] == "model"
    assert "canary" in error["message"] and "tickets:production" in error["message"]

    with pytest.raises(openai.AuthenticationError) as wrong:
        ask(stack.client(stack.direct, key="ftm_gw_" + "x" * 43), "tickets")
    assert wrong.value.code == "invalid_api_key" and "ftm keys create" in wrong.value.message

    doomed = keys.create(stack.engine, "doomed").key
    assert ask(stack.client(stack.direct, key=doomed), "tickets").parse().model == OLD
    keys.revoke(stack.engine, "doomed")
    with pytest.raises(openai.AuthenticationError):
        ask(stack.client(stack.direct, key=doomed), "tickets")

    raw = httpx.post(
        stack.direct.base_url + "/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {stack.key}"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    logged = stack.rows(raw.headers["x-request-id"])[raw.headers["x-request-id"]]
    assert (logged.status_code, logged.error_code, logged.key_name) == (
        400,
        "invalid_json",
        "test-app",
    )


def test_a_provider_error_is_a_502_body_and_the_next_request_works(stack: Stack) -> None:
    stack.emulator.faults = FaultPlan().next(1, "server_error", "chat.completions")
    client = stack.client(stack.direct)
    with pytest.raises(openai.InternalServerError) as failed:
        ask(client, "tickets")
    assert failed.value.status_code == 502 and failed.value.code == "provider_error"
    assert "provider openai answered 500" in failed.value.message
    request_id = failed.value.response.headers["x-request-id"]
    assert ask(client, "tickets").parse().model == OLD
    row = stack.rows(request_id)[request_id]
    assert (row.status_code, row.error_code, row.model) == (502, "provider_error", OLD)

    # A rate limit is the client's to wait out: relayed as 429 with the provider's wait.
    stack.emulator.faults = FaultPlan().next(1, "rate_limit", "chat.completions", retry_after_s=3)
    with pytest.raises(openai.RateLimitError) as limited:
        ask(client, "tickets")
    assert limited.value.response.headers["retry-after"] == "3"


def test_a_provider_that_hangs_up_or_times_out_is_a_502_or_504(stack: Stack) -> None:
    client = stack.client(stack.direct)
    stack.emulator.faults = FaultPlan().next(1, "drop_before", "chat.completions")
    with pytest.raises(openai.InternalServerError) as dropped:
        ask(client, "tickets")
    assert dropped.value.status_code == 502 and dropped.value.code == "provider_unreachable"
    upstream_client = stack.direct.gateway._client
    patient = upstream_client.timeout
    upstream_client.timeout = httpx.Timeout(0.2)
    stack.emulator.faults = FaultPlan().next(1, "slow", "chat.completions", delay_s=1.0)
    try:
        with pytest.raises(openai.InternalServerError) as slow:
            ask(client, "tickets")
    finally:
        upstream_client.timeout = patient
    assert slow.value.status_code == 504 and slow.value.code == "provider_timeout"
    assert ask(client, "tickets").parse().model == OLD


def test_a_provider_key_echoed_upstream_never_reaches_the_client(stack: Stack, steer) -> None:
    steer.change = lambda plan: dataclasses.replace(
        plan, answer=dataclasses.replace(plan.answer, model=ECHO_KEY_MODEL)
    )
    with pytest.raises(openai.InternalServerError) as failed:
        ask(stack.client(stack.steered), "tickets")
    assert failed.value.status_code == 502  # the provider refused ftm's key: not the client's
    assert "Incorrect API key provided: ***" in failed.value.message
    assert PROVIDER_KEY not in failed.value.response.text


def test_a_holder_whose_deployment_is_not_running_is_a_503_naming_ftm_deploy(
    stack: Stack, steer
) -> None:
    steer.change = lambda plan: dataclasses.replace(
        plan,
        answer=dataclasses.replace(
            plan.answer, needs_deployment=True, deployment=None, deployment_id=None
        ),
    )
    with pytest.raises(openai.InternalServerError) as failed:
        ask(stack.client(stack.steered), "tickets")
    assert failed.value.status_code == 503 and failed.value.code == "deployment_not_running"
    assert "ftm deploy tickets:production" in failed.value.message


# ------------------------------------------------------------------ streaming, shadow


def test_a_stream_is_relayed_and_its_usage_logged_without_showing_it(stack: Stack) -> None:
    client = stack.client(stack.direct)  # the emulator streams, as OpenAI does
    whole = ask(client, "tickets").parse().choices[0].message.content
    raw = ask(client, "tickets", stream=True)
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert len(chunks) > 3 and all(c.usage is None for c in chunks)  # not asked: dropped
    row = stack.rows(raw.headers["x-request-id"])[raw.headers["x-request-id"]]
    assert row.prompt_tokens and row.completion_tokens and row.status_code == 200

    asked = list(
        ask(client, "tickets", stream=True, stream_options={"include_usage": True}).parse()
    )
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens == row.completion_tokens


def test_a_client_that_leaves_mid_stream_is_logged_and_the_gateway_serves_on(
    stack: Stack, steer
) -> None:
    steer.change = lambda plan: dataclasses.replace(
        plan, answer=dataclasses.replace(plan.answer, model=SLOW_MODEL)
    )
    body = {"model": "tickets", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"authorization": f"Bearer {stack.key}"}
    with httpx.stream(
        "POST", stack.steered.base_url + "/chat/completions", json=body, headers=headers
    ) as response:
        request_id = response.headers["x-request-id"]
        next(response.iter_raw())  # the first chunk, then the client hangs up
    deadline = time.monotonic() + 10
    while (row := stack.rows(request_id).get(request_id)) is None:
        assert time.monotonic() < deadline, "the abandoned stream was never logged"
        time.sleep(0.05)
    assert (row.status_code, row.error_code) == (499, "client_closed_request")
    steer.change = None
    assert ask(stack.client(stack.steered), "tickets").parse().model == OLD


def test_a_shadow_gets_the_request_and_both_answers_are_logged(stack: Stack, steer) -> None:
    steer.change = lambda plan: dataclasses.replace(
        plan, shadow=dataclasses.replace(plan.answer, alias="staging", model=CANDIDATE)
    )
    raw = ask(stack.client(stack.steered), "tickets", text="Is the shop open?", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert OLD in text and CANDIDATE not in text  # the client sees the primary only
    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while not any(s["request_id"] == request_id for s in stack.watched.shadows):
        assert time.monotonic() < deadline, "the shadow answer was never logged"
        time.sleep(0.01)
    shadow = next(s for s in stack.watched.shadows if s["request_id"] == request_id)
    assert shadow["primary_text"] == text and shadow["primary_model"] == OLD
    assert CANDIDATE in shadow["candidate_text"] and shadow["candidate_status"] == 200
    assert shadow["messages"] == [{"role": "user", "content": "Is the shop open?"}]
    rows = stack.rows(request_id, request_id + "-shadow")
    assert rows[request_id + "-shadow"].route == "shadow"
    assert rows[request_id + "-shadow"].alias == "staging"  # the candidate's, not production's
    assert rows[request_id + "-shadow"].model == CANDIDATE


def test_a_provider_without_upstream_answers_through_complete(stack: Stack) -> None:
    client = stack.client(stack.complete_only)
    answer = ask(client, "tickets").parse()
    assert answer.model == OLD and OLD in answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0
    chunks = list(
        ask(client, "tickets", stream=True, stream_options={"include_usage": True}).parse()
    )
    assert chunks[0].choices[0].delta.content == answer.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_the_default_pool_builds_providers_from_ftm_settings(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTM_PROVIDERS__OPENAI__SANDBOX", "true")
    monkeypatch.setenv("FTM_PROVIDERS__OPENAI__SANDBOX_URL", stack.emulator.base_url)
    pool = ProviderPool(stack.engine)
    provider = pool.get("openai")
    assert pool.get("openai") is provider  # built once
    assert provider.upstream(OLD).base_url == stack.emulator.base_url
    pool.close()


def test_stopping_the_gateway_flushes_and_closes_the_request_log(stack: Stack) -> None:
    watched = WatchedLog(stack.engine)
    closed = []
    close = watched.close
    watched.close = lambda: (closed.append(True), close())[1]
    gateway = Gateway(stack.engine, request_log=watched)
    with GatewayServer(gateway) as server:
        refused = httpx.get(server.base_url + "/models")  # no key: 401, logged nowhere
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert closed == [True]


def test_the_gateway_stops_idle_deployments_on_its_interval(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`app.deployments.idle.enforce_idle_stops` is called every
    ``idle_check_s`` with the gateway's database; one that fails does not stop the loop."""
    calls = []

    def enforce_idle_stops(engine) -> None:
        calls.append(engine)
        if len(calls) == 1:
            raise RuntimeError("provider unreachable")

    monkeypatch.setattr("app.deployments.idle.enforce_idle_stops", enforce_idle_stops)
    with GatewayServer(Gateway(stack.engine, idle_check_s=0.02)):
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline, "idle stops were not enforced"
            time.sleep(0.01)
    assert set(calls) == {stack.engine}


def test_the_stored_canary_and_shadow_policies_steer_real_traffic(stack: Stack) -> None:
    """`ftm models canary` / `shadow` as stored in the database, through the gateway: the
    staged candidate answers its share (within 4 sigma of a binomial), every canary answer
    is logged as such, and a shadowed request stores both answers, returning only one."""
    from app.gateway import policy
    from db.models import ShadowAnswer

    client = stack.client(stack.direct)
    n, share = 160, 0.25
    try:
        policy.set_canary(stack.engine, "tickets", share * 100)
        answers = [ask(client, "tickets", max_tokens=3) for _ in range(n)]
        by_candidate = [a for a in answers if a.parse().model == CANDIDATE]
        sigma = (n * share * (1 - share)) ** 0.5
        assert abs(len(by_candidate) - n * share) <= 4 * sigma, len(by_candidate)
        rows = stack.rows(*(a.headers["x-request-id"] for a in answers))
        canary = {i for i, row in rows.items() if row.route == "canary"}
        assert canary == {a.headers["x-request-id"] for a in by_candidate}
        assert all(rows[i].alias == "production" for i in canary)  # the alias asked for

        policy.set_canary(stack.engine, "tickets", 0)
        policy.set_shadow(stack.engine, "tickets", True)
        shadowed = ask(client, "tickets", "Where is my parcel?")
        assert shadowed.parse().model == OLD  # the candidate's answer is never returned
        request_id = shadowed.headers["x-request-id"]
        deadline = time.monotonic() + 10
        while True:
            stack.direct.gateway.log.flush()
            with read_session(stack.engine) as session:
                pair = session.exec(
                    select(ShadowAnswer).where(ShadowAnswer.request_id == request_id)
                ).first()
            if pair is not None:
                break
            assert time.monotonic() < deadline, "the shadow answer was never stored"
            time.sleep(0.05)
        assert pair.primary_text == shadowed.parse().choices[0].message.content
        assert pair.candidate_model == CANDIDATE and pair.candidate_status == 200
        assert CANDIDATE in pair.candidate_text and pair.candidate_text != pair.primary_text
    finally:
        policy.set_canary(stack.engine, "tickets", 0)
        policy.set_shadow(stack.engine, "tickets", False)
