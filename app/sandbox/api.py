"""The HTTP face of the emulator: a Starlette app serving the OpenAI routes under ``/v1``.

Each route is an *operation* (``jobs.create``...; the names fault rules match). Every
request is authenticated like the real API (any ``Bearer sk-...`` key works), then the
fault plan may answer instead, delay it, or drop the connection before or after it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.sandbox import errors
from app.sandbox.errors import ApiError, invalid
from app.sandbox.job_request import parse_job_request
from app.sandbox.responder import base_model_reply, fine_tuned_reply
from app.sandbox.state import MAX_PAGE
from app.sandbox.training_data import count_message_tokens
from providers.chat_stream import (
    MEDIA_TYPE,
    ChunkMaker,
    completion_chunks,
    event_stream,
    wants_usage,
)

if TYPE_CHECKING:
    from app.sandbox.faults import FaultPlan
    from app.sandbox.state import SandboxState

DROP_KEY = "ftm.drop_connection"
logger = logging.getLogger("ftm.sandbox")


class Sandbox:
    """What the app serves: the state, and the fault plan (replaceable at any time)."""

    def __init__(self, state: SandboxState, faults: FaultPlan | None = None) -> None:
        self.state = state
        self.faults = faults


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class _DroppedConnection(Response):
    """Not a response at all: the connection is closed without an answer."""

    def __init__(self) -> None:  # noqa: D107 - no body, no headers
        pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope[DROP_KEY]()


class ConnectionDropper:
    """Outermost ASGI middleware: lets an endpoint close its connection unanswered.

    uvicorn's ``send`` is a method of the request cycle, which holds the socket's
    transport; aborting it resets the connection, so the client gets no response at all.
    Under another server, the fallback starts a response and never finishes it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def drop() -> None:
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                transport.abort()
                # Let connection_lost run so the server knows not to answer.
                for _ in range(20):
                    if getattr(cycle, "disconnected", True):
                        break
                    await asyncio.sleep(0)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )

        scope[DROP_KEY] = drop
        await self.app(scope, receive, send)


def _authenticate(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise errors.missing_key()
    if not key.startswith("sk-"):
        raise errors.bad_key(key)


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(
            f"Invalid '{name}': expected an integer, but got '{raw}' instead.",
            param=name,
            code="invalid_type",
        ) from None
    if not 1 <= value <= high:
        raise invalid(
            f"Invalid '{name}': must be between 1 and {high}, but got {value}.",
            param=name,
            code="invalid_value",
        )
    return value


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        ) from None


Handler = Callable[[Sandbox, Request], Awaitable[Response | dict[str, Any]]]


def _operation(
    sandbox: Sandbox,
    name: str,
    handler: Handler,
    authenticate: Callable[[Request], None] = _authenticate,
) -> Callable[[Request], Awaitable[Response]]:
    """One route: authentication (the service's own rule: the Together emulator passes
    its own), then the fault plan, then ``handler``."""

    async def endpoint(request: Request) -> Response:
        try:
            authenticate(request)
            plan = sandbox.faults
            fault = plan.decide(name) if plan is not None else None
            kind = fault.kind if fault else None
            if kind == "rate_limit":
                raise errors.rate_limited(fault.retry_after_s)
            if kind == "server_error":
                raise errors.server_error()
            if kind == "unavailable":
                raise errors.unavailable()
            if kind == "drop_before":
                return _DroppedConnection()
            if kind == "slow":
                # The request has reached the service: read it whole before the wait, so it
                # takes effect even if the client gives up in the meantime.
                await request.body()
                await asyncio.sleep(fault.delay_s)
            result = await handler(sandbox, request)
            if kind == "drop_after":
                return _DroppedConnection()
            if kind == "error_after":  # it took effect, yet the answer says it failed
                raise errors.server_error()
            return result if isinstance(result, Response) else JSONResponse(result)
        except ApiError as error:
            return _error_response(error)
        except Exception:  # a sandbox bug: answer in the API's shape, keep the traceback
            logger.exception("sandbox error in %s", name)
            return _error_response(
                ApiError(
                    500,
                    f"Internal error in the ftm sandbox while handling {name}; see its log.",
                    type="server_error",
                )
            )

    return endpoint


# ----------------------------------------------------------------------- handlers


async def create_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    try:
        form = await request.form()
    except Exception as exc:  # multipart parser errors come in several types
        raise invalid(f"Could not parse the multipart form: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise invalid(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    content = await upload.read()
    purpose = form.get("purpose")
    return await run_in_threadpool(
        sandbox.state.upload_file,
        upload.filename or "file",
        purpose if isinstance(purpose, str) else None,
        content,
    )


async def list_files(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(
            f"Invalid 'order': expected 'asc' or 'desc', but got '{order}'.", param="order"
        )
    return sandbox.state.list_files(
        purpose=request.query_params.get("purpose"),
        limit=_int_param(request, "limit", 10_000, 10_000),
        order=order,
        after=request.query_params.get("after"),
    )


async def retrieve_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.retrieve_file(request.path_params["file_id"])


async def delete_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.delete_file(request.path_params["file_id"])


async def file_content(sandbox: Sandbox, request: Request) -> Response:
    content = sandbox.state.file_content(request.path_params["file_id"])
    return Response(content, media_type="application/octet-stream")


async def create_job(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    refusal = sandbox.state.creation_refused()
    if refusal is not None:  # the organization may not create jobs at all: say so first
        raise refusal
    return await run_in_threadpool(sandbox.state.create_job, parse_job_request(body))


async def list_jobs(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    metadata = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.multi_items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    return await run_in_threadpool(
        lambda: sandbox.state.list_jobs(
            after=request.query_params.get("after"),
            limit=_int_param(request, "limit", 20, MAX_PAGE),
            metadata=metadata,
        )
    )


def _job_op(method_name: str) -> Handler:
    async def handler(sandbox: Sandbox, request: Request) -> dict[str, Any]:
        operation = getattr(sandbox.state, method_name)
        return await run_in_threadpool(operation, request.path_params["job_id"])

    return handler


async def list_events(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: sandbox.state.list_events(
            request.path_params["job_id"],
            after=request.query_params.get("after"),
            limit=_int_param(request, "limit", 20, MAX_PAGE),
        )
    )


async def list_checkpoints(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: sandbox.state.list_checkpoints(
            request.path_params["job_id"],
            after=request.query_params.get("after"),
            limit=_int_param(request, "limit", 10, MAX_PAGE),
        )
    )


async def list_models(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.list_models)


async def retrieve_model(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.retrieve_model, request.path_params["model"])


async def delete_model(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.delete_model, request.path_params["model"])


async def chat_completions(sandbox: Sandbox, request: Request) -> dict[str, Any] | Response:
    return await answer_chat(sandbox, await _json_body(request))


async def answer_chat(sandbox: Sandbox, body: Any) -> dict[str, Any] | Response:
    """A chat completion for a parsed request body (the Azure routes set its ``model``
    from the deployment named in the URL); with ``stream: true`` the same completion as
    server-sent ``chat.completion.chunk`` events."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(
                f"Invalid value for 'messages[{index}]': expected an object with a 'role'.",
                param=f"messages[{index}]",
                code="invalid_value",
            )
    n = body.get("n") or 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise invalid("Invalid 'n': expected an integer between 1 and 128.", param="n")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise invalid("Invalid 'max_tokens': expected a positive integer.", param="max_tokens")
    completion = await run_in_threadpool(_complete, sandbox, model, messages, n, limit)
    if body.get("stream"):
        return _streamed(completion, wants_usage(body))
    return completion


def _streamed(completion: dict[str, Any], include_usage: bool) -> Response:
    """``completion`` told word by word, as the service streams it."""
    maker = ChunkMaker(
        completion["id"],
        completion["created"],
        completion["model"],
        usage_field=include_usage,
        extra=(
            ("service_tier", completion["service_tier"]),
            ("system_fingerprint", completion["system_fingerprint"]),
        ),
    )
    chunks = completion_chunks(completion, maker, include_usage)
    return event_stream_response(event_stream(chunks))


def event_stream_response(events: Iterator[bytes]) -> StreamingResponse:
    """Server-sent events already computed, sent from the event loop (a plain iterator
    would cost Starlette a worker-thread hop per event: many streams at once queue up)."""

    async def send() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    return StreamingResponse(send(), media_type=MEDIA_TYPE)


def _complete(
    sandbox: Sandbox, model: str, messages: list[dict[str, Any]], n: int, limit: int | None
) -> dict[str, Any]:
    from app.tokens import encoding_for_model

    base, memory = sandbox.state.chat_model(model)
    if memory is None:
        reply, shown_model = base_model_reply(base, messages), base
    else:
        reply, shown_model = fine_tuned_reply(memory, model, messages), model
    encoding = encoding_for_model(base)
    tokens = encoding.encode(reply, disallowed_special=())
    finish_reason = "stop"
    if limit is not None and len(tokens) > limit:
        tokens = tokens[:limit]
        reply = encoding.decode(tokens)
        finish_reason = "length"
    prompt_tokens = count_message_tokens(messages, base)
    message = {"role": "assistant", "content": reply, "refusal": None, "annotations": []}
    return {
        "id": sandbox.state.new_id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(sandbox.state.now()),
        "model": shown_model,
        "choices": [
            {"index": i, "message": dict(message), "logprobs": None, "finish_reason": finish_reason}
            for i in range(n)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens) * n,
            "total_tokens": prompt_tokens + len(tokens) * n,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_ftm_sandbox",
    }


# ---------------------------------------------------------------------- the app

ROUTE_TABLE: list[tuple[str, str, str, Handler]] = [
    ("POST", "/v1/files", "files.create", create_file),
    ("GET", "/v1/files", "files.list", list_files),
    ("GET", "/v1/files/{file_id}", "files.retrieve", retrieve_file),
    ("DELETE", "/v1/files/{file_id}", "files.delete", delete_file),
    ("GET", "/v1/files/{file_id}/content", "files.content", file_content),
    ("POST", "/v1/fine_tuning/jobs", "jobs.create", create_job),
    ("GET", "/v1/fine_tuning/jobs", "jobs.list", list_jobs),
    ("GET", "/v1/fine_tuning/jobs/{job_id}", "jobs.retrieve", _job_op("retrieve_job")),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel", "jobs.cancel", _job_op("cancel_job")),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause", "jobs.pause", _job_op("pause_job")),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume", "jobs.resume", _job_op("resume_job")),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events", "jobs.events", list_events),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints", "jobs.checkpoints", list_checkpoints),
    ("GET", "/v1/models", "models.list", list_models),
    # Fine-tuned model ids contain colons, never slashes; `path` keeps them whole.
    ("GET", "/v1/models/{model:path}", "models.retrieve", retrieve_model),
    ("DELETE", "/v1/models/{model:path}", "models.delete", delete_model),
    ("POST", "/v1/chat/completions", "chat.completions", chat_completions),
]


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 405:
        return _error_response(
            ApiError(405, f"Method {request.method} is not allowed for {request.url.path}")
        )
    return _error_response(errors.not_found_route(request.method, request.url.path))


def create_app(sandbox: Sandbox) -> ASGIApp:
    """The ASGI app serving ``sandbox``."""
    routes = [
        Route(path, _operation(sandbox, name, handler), methods=[method], name=name)
        for method, path, name, handler in ROUTE_TABLE
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return ConnectionDropper(app)
