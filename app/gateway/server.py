"""`ftm serve`: the gateway, an OpenAI-compatible server in front of the promoted models.

A client asks for ``model="TASK:ALIAS"`` (or ``TASK``, its production alias) with a gateway
key. Each request is resolved when it arrives (`app.gateway.routing.plan`: one read of
who holds the alias now), so a promotion or a rollback reaches the very next request with
no restart, and forwarded to the holder's provider (`Provider.upstream`, or
`Provider.complete` where the provider has no OpenAI-compatible endpoint). A shadow
candidate gets the same request in the background; the client's answer never waits for
it. Every request, refused ones too, goes to the batched request log, never written on
the request path.

The request path costs: one indexed read for the route and one for the key (skipped while
the database has not changed, `KeyCheck`), both on the event loop (cheaper than a hop to
a thread); no provider construction after the first request to a provider
(`ProviderPool`); one pooled HTTP connection upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.gateway import errors, forward
from app.gateway.auth import KeyCheck
from app.gateway.cost import request_cost_usd
from app.gateway.errors import GatewayError
from app.gateway.forward import Outcome
from app.gateway.provider_pool import ProviderPool
from db.models import utcnow
from providers.errors import ProviderError

log = logging.getLogger("ftm.gateway")

IDLE_CHECK_S = 60.0
"""How often idle deployments are looked for (and stopped past their idle limit)."""
UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=30.0, pool=30.0)
UPSTREAM_LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=32)
"""Enough connections for a burst of long streams (hundreds at once) to one upstream, but
few kept idle: the pool looks over every kept connection on each request (profiled: with
hundreds kept after a burst, that scan cost more than the rest of the request)."""
SHADOW_WAIT_S = 330.0
"""How long a shadow request waits for the primary's answer to compare with."""
SHUTDOWN_GRACE_S = 5.0
"""How long a stop waits for shadow requests in flight (and uvicorn for open requests)."""
COMPLETE_THREADS = 16
"""Requests answered through `Provider.complete` at once (each holds a worker thread
while the model answers): a slow model queues its own requests, not the gateway's other
work in threads (shutdown, idle stops)."""

Planner = Callable[..., Any]


@dataclass
class Context:
    """One request as the log records it."""

    request_id: str
    created_at: datetime
    started: float
    key_name: str | None = None
    task: str | None = None
    alias: str | None = None
    provider: str | None = None
    model: str | None = None
    base_model: str | None = None
    deployment_id: int | None = None
    route: str = "primary"

    def entry(self, outcome: Outcome) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "created_at": self.created_at,
            "task": self.task,
            "alias": self.alias,
            "provider": self.provider,
            "model": self.model,
            "deployment_id": self.deployment_id,
            "route": self.route,
            "key_name": self.key_name,
            "latency_ms": (time.perf_counter() - self.started) * 1000,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost_usd": request_cost_usd(
                self.provider or "",
                self.model or "",
                self.base_model,
                outcome.prompt_tokens,
                outcome.completion_tokens,
            )
            if self.provider and outcome.status < 400
            else None,
            "status_code": outcome.status,
            "error_code": outcome.error_code,
        }

    def hold(self, target: Any) -> None:
        self.provider, self.model = target.provider, target.model
        self.base_model, self.deployment_id = target.base_model, target.deployment_id


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, GatewayError | None]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return None, errors.bad_request(
            f"The request body is not valid JSON ({exc}); send a JSON object.", code="invalid_json"
        )
    if not isinstance(body, dict):
        return None, errors.bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None, errors.bad_request(
            "Missing required parameter: 'model' (TASK:ALIAS, or TASK for its production "
            "alias; GET /v1/models lists them).",
            param="model",
            code="missing_required_parameter",
        )
    return body, None


class Gateway:
    """The gateway's ASGI app (``.app``) and what it holds: the provider pool, the pooled
    upstream client, the request log.

    ``planner`` (default `app.gateway.route_cache.RouteCache`: `routing.plan` with its
    reads kept until the database changes) and ``request_log`` (default a
    `app.gateway.request_log.RequestLog` on ``engine``) can be given, for tests that need
    a route the database does not configure or to watch what is logged.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        providers: ProviderPool | None = None,
        planner: Planner | None = None,
        request_log: Any = None,
        idle_check_s: float | None = IDLE_CHECK_S,
    ) -> None:
        from app.gateway import routing
        from app.gateway.route_cache import RouteCache

        self.engine = engine
        self.providers = providers or ProviderPool(engine)
        self.keys = KeyCheck(engine)
        self._routes: RouteCache | None = None
        if planner is None:
            self._routes = planner = RouteCache(engine)
        self.plan: Planner = planner
        self._unknown_model: type[Exception] = routing.UnknownModel
        self._served_models = routing.served_models
        self._given_log = request_log
        self.log: Any = None
        self.idle_check_s = idle_check_s
        self._client: httpx.AsyncClient | None = None
        self._background: set[asyncio.Task] = set()
        self._complete_limiter = anyio.CapacityLimiter(COMPLETE_THREADS)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error, Exception: self._crash},
            lifespan=self._lifespan,
        )

    # -- life -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self._given_log is not None:
            self.log = self._given_log
        else:
            from app.gateway.request_log import RequestLog

            self.log = RequestLog(self.engine)
        self._client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, limits=UPSTREAM_LIMITS)
        idle = asyncio.create_task(self._idle_loop()) if self.idle_check_s else None
        try:
            yield
        finally:
            if idle is not None:
                idle.cancel()
            if self._background:  # shadows in flight: let them finish and be logged
                await asyncio.wait(list(self._background), timeout=SHUTDOWN_GRACE_S)
            await self._client.aclose()
            await anyio.to_thread.run_sync(self.log.close)
            await anyio.to_thread.run_sync(self.providers.close)
            self.keys.close()
            if self._routes is not None:
                self._routes.close()

    async def _idle_loop(self) -> None:
        """Stop deployments idle past their limit, every ``idle_check_s``."""
        from app.deployments.idle import enforce_idle_stops

        while True:
            await asyncio.sleep(self.idle_check_s)
            try:
                stops = await anyio.to_thread.run_sync(enforce_idle_stops, self.engine)
            except Exception as exc:  # the next round tries again; serving goes on
                log.warning("idle-stop check failed: %s", exc)
                continue
            for stop in stops or ():  # said where the person running `ftm serve` looks
                log.warning("idle deployment stopped: %s", stop)

    # -- routes -------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        key = _bearer(request.headers.get("authorization"))

        try:
            if key is None or self.keys.name_of(key) is None:
                raise errors.invalid_key()
            names = self._served_models(self.engine)
        except GatewayError as exc:
            return exc.response()
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "ftm"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        ctx = Context("req_" + uuid.uuid4().hex, utcnow(), time.perf_counter())
        primary: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        try:
            raw = await request.body()
            body, malformed = _parse(raw)
            key = _bearer(request.headers.get("authorization"))
            plan = self._resolve(ctx, key, body["model"] if body else None)
            if malformed is not None:
                raise malformed
            assert body is not None and plan is not None
            ctx.task, ctx.alias, ctx.route = plan.task, plan.alias, plan.route
            ctx.hold(plan.answer)
            if plan.shadow is not None:
                self._start_shadow(ctx, plan, body, primary)
            return await self._answer(ctx, plan, body, primary)
        except GatewayError as exc:
            self._record(ctx, Outcome(exc.status, exc.code), primary)
            return exc.response(ctx.request_id)
        except Exception as exc:  # a bug: logged, answered, and the gateway serves on
            log.exception("internal error answering %s", ctx.request_id)
            self._record(ctx, Outcome(500, "internal_error"), primary)
            return _internal(exc).response(ctx.request_id)

    def _resolve(self, ctx: Context, key: str | None, model: str | None) -> Any:
        """The key (401 first, as OpenAI does), then the route.

        On the event loop, not in a worker thread: the two indexed reads (often one, see
        `KeyCheck`) cost less than the hop to a thread and back, and reads never wait on
        SQLite's writers (WAL)."""
        name = self.keys.name_of(key) if key else None
        if name is None:
            raise errors.invalid_key()
        ctx.key_name = name
        if model is None:
            return None
        try:
            return self.plan(self.engine, model)
        except self._unknown_model as exc:
            raise errors.unknown_model(getattr(exc, "message", None) or str(exc)) from None

    async def _answer(
        self, ctx: Context, plan: Any, body: dict[str, Any], primary: asyncio.Future
    ) -> Response:
        target = plan.answer
        provider, upstream = self._upstream_of(plan, target)
        headers = {"x-request-id": ctx.request_id, "x-ftm-route": ctx.route}
        stream = bool(body.get("stream"))
        if upstream is None:
            completion = await self._complete(provider, target, body)
            outcome = Outcome(
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                text=completion.text,
            )
            self._record(ctx, outcome, primary)
            if stream:
                events = forward.completion_events(
                    completion, target.model, with_usage=forward.client_wants_usage(body)
                )
                return Response(events, media_type="text/event-stream", headers=headers)
            return JSONResponse(forward.completion_json(completion, target.model), headers=headers)
        assert self._client is not None
        if not stream:
            content, outcome = await forward.post(self._client, upstream, body, target.provider)
            self._record(ctx, outcome, primary)
            return Response(content, media_type="application/json", headers=headers)
        response = await forward.open_stream(self._client, upstream, body, target.provider)
        relay = forward.SseRelay(
            forward.client_wants_usage(body), collect_text=plan.shadow is not None
        )
        return StreamingResponse(
            self._relay(ctx, response, relay, target, primary),
            media_type="text/event-stream",
            headers=headers | {"cache-control": "no-cache"},
        )

    async def _relay(
        self,
        ctx: Context,
        response: httpx.Response,
        relay: forward.SseRelay,
        target: Any,
        primary: asyncio.Future,
    ) -> AsyncIterator[bytes]:
        outcome = relay.outcome
        try:
            async for chunk in response.aiter_bytes():
                out = relay.feed(chunk)
                if out:
                    yield out
            tail = relay.finish()
            if tail:
                yield tail
        except httpx.HTTPError as exc:
            failed = errors.upstream_unreachable(
                target.provider,
                target.model,
                f"the stream broke: {type(exc).__name__}",
                timeout=isinstance(exc, httpx.TimeoutException),
            )
            outcome.status, outcome.error_code = failed.status, failed.code
            yield failed.sse_event()
        except BaseException:  # the client went away (cancelled): still logged
            outcome.status, outcome.error_code = 499, "client_closed_request"
            raise
        finally:
            await response.aclose()
            self._record(ctx, outcome, primary)

    def _upstream_of(self, plan: Any, target: Any) -> tuple[Any, Any]:
        """The holder's provider instance and upstream (None: answer through complete).

        Raises:
            GatewayError: 503 when its deployment is not running; 502 when its provider
                cannot be built or has no key.
        """
        if target.needs_deployment and target.deployment is None:
            raise errors.not_serving(plan.task, target.alias, target.provider, target.model)
        try:
            provider = self.providers.get(target.provider)
            return provider, provider.upstream(target.model, target.deployment)
        except ProviderError as exc:  # ConfigurationError: no key, no endpoint...
            raise errors.provider_not_ready(target.provider, exc.message) from None
        except Exception as exc:  # not installed, invalid settings: said, not raised
            raise errors.provider_not_ready(target.provider, " ".join(str(exc).split())) from None

    async def _complete(self, provider: Any, target: Any, body: dict[str, Any]) -> Any:
        messages = forward.chat_messages(body)
        kwargs = forward.complete_kwargs(body)
        try:
            return await anyio.to_thread.run_sync(
                lambda: provider.complete(target.model, messages, **kwargs),
                limiter=self._complete_limiter,
            )
        except ProviderError as exc:
            raise forward.provider_failed(target.provider, target.model, exc) from None

    def _record(self, ctx: Context, outcome: Outcome, primary: asyncio.Future) -> None:
        if not primary.done():
            primary.set_result(outcome.text if outcome.status < 400 else None)
        if self.log is not None:
            self.log.record(ctx.entry(outcome))

    # -- shadow -------------------------------------------------------------------------

    def _start_shadow(
        self, ctx: Context, plan: Any, body: dict[str, Any], primary: asyncio.Future
    ) -> None:
        task = asyncio.create_task(self._shadow(ctx, plan, body, primary))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(
        self, ctx: Context, plan: Any, body: dict[str, Any], primary: asyncio.Future
    ) -> None:
        """Send the request to the shadow candidate too; log its answer beside the
        primary's. Never raises: a shadow's failure is a logged status, nothing more."""
        target = plan.shadow
        shadow = Context(ctx.request_id + "-shadow", utcnow(), time.perf_counter())
        # Logged under the candidate's alias, marked ``shadow``: its cost is the
        # candidate's trial, not the primary alias's traffic.
        shadow.task, shadow.alias, shadow.route, shadow.key_name = (
            ctx.task,
            target.alias,
            "shadow",
            ctx.key_name,
        )
        shadow.hold(target)
        sent = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        outcome = Outcome()
        try:
            provider, upstream = self._upstream_of(plan, target)
            if upstream is None:
                completion = await self._complete(provider, target, sent)
                outcome.text = completion.text
                outcome.prompt_tokens = completion.prompt_tokens
                outcome.completion_tokens = completion.completion_tokens
            else:
                assert self._client is not None
                _, outcome = await forward.post(self._client, upstream, sent, target.provider)
        except GatewayError as exc:
            outcome = Outcome(exc.status, exc.code)
        except Exception as exc:
            log.warning("shadow request %s failed: %s", shadow.request_id, exc)
            outcome = Outcome(500, "internal_error")
        latency_ms = (time.perf_counter() - shadow.started) * 1000
        try:
            primary_text = await asyncio.wait_for(asyncio.shield(primary), SHADOW_WAIT_S)
        except TimeoutError:
            primary_text = None
        try:
            self.log.record(shadow.entry(outcome))
            self.log.record_shadow(
                request_id=ctx.request_id,
                task=ctx.task,
                alias=ctx.alias,
                messages=body.get("messages"),
                primary_provider=ctx.provider,
                primary_model=ctx.model,
                primary_text=primary_text,
                candidate_provider=target.provider,
                candidate_model=target.model,
                candidate_text=outcome.text if outcome.status < 400 else None,
                candidate_latency_ms=latency_ms,
                candidate_status=outcome.status,
            )
        except Exception as exc:  # the log never raises by contract; belt and braces
            log.warning("shadow answer of %s not logged: %s", ctx.request_id, exc)

    # -- errors outside the routes ---------------------------------------------------

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 404:
            failed = GatewayError(
                404,
                f"Unknown path {request.url.path}: the gateway serves POST "
                "/v1/chat/completions, GET /v1/models and GET /health.",
                code="unknown_url",
            )
        elif status == 405:
            failed = GatewayError(
                405,
                f"{request.method} is not allowed on {request.url.path}.",
                code="method_not_allowed",
            )
        else:
            failed = GatewayError(status, str(getattr(exc, "detail", "")), code="http_error")
        return failed.response()

    async def _crash(self, request: Request, exc: Exception) -> Response:
        """A bug, not an expected failure: logged with its traceback on the server, an
        OpenAI error body to the client, and the gateway serves on."""
        log.exception("internal error on %s", request.url.path)
        return _internal(exc).response()


def _internal(exc: Exception) -> GatewayError:
    return GatewayError(
        500,
        f"internal gateway error ({type(exc).__name__}); the gateway's log has the details",
        code="internal_error",
        type="server_error",
    )
