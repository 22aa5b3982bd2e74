"""The HTTP face of the Together emulator: Together's files and fine-tuning routes under
``/v1``, served through the OpenAI emulator's operation wrapper (fault plan, dropped
connections, errors in the ``{"error": {...}}`` shape Together's ``ErrorData`` shares).

Uploads come two ways: the spec's one-request ``POST /files/upload`` (multipart with the
file), and the ``together`` SDK's three requests: ``POST /files`` (the form without the
file) answered by a 302 whose ``Location`` is where to PUT the bytes, the PUT, then
``POST /files/{id}/preprocess``. Both end in the same stored file.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.sandbox.api import (
    ConnectionDropper,
    Handler,
    Sandbox,
    _http_error,
    _operation,
    event_stream_response,
)
from app.sandbox.errors import ApiError, invalid
from app.sandbox.together.download import download
from app.sandbox.together.job_request import parse_request
from app.sandbox.together.serving import streamed
from providers.together.config import SANDBOX_API_KEY

UPLOAD_TARGET = "/v1/sandbox-uploads/{file_id}"
"""Where the emulator tells the SDK to PUT a file's bytes (the real service: a bucket)."""


INVALID_KEY_MESSAGE = (
    "Invalid API key provided. You can find your API key at "
    "https://api.together.xyz/settings/api-keys."
)
"""Together's own wording for a key it does not know (answered 401, code invalid_api_key)."""


def key_check(api_key: str) -> Callable[[Request], None]:
    """The authenticator for an emulator that accepts exactly ``api_key`` as a bearer token,
    answering a missing or wrong one as Together does: 401 in the ``ErrorData`` shape."""

    def authenticate(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "Missing API key: send it as 'Authorization: Bearer <TOGETHER_API_KEY>'.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        # Compared in constant time; the key itself is never echoed back.
        if not hmac.compare_digest(key.strip().encode(), api_key.encode()):
            raise ApiError(
                401, INVALID_KEY_MESSAGE, type="invalid_request_error", code="invalid_api_key"
            )

    return authenticate


async def _form(request: Request) -> Any:
    try:
        return await request.form()
    except Exception as exc:  # multipart parser errors come in several types
        raise invalid(f"Could not parse the multipart form: {exc}") from None


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise invalid(
            "The request body is not valid JSON; send a JSON object with "
            "Content-Type: application/json."
        ) from None


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def upload_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    form = await _form(request)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise invalid("Missing required parameter: 'file'.", param="file")
    content = await upload.read()
    filename = _text(form, "file_name") or upload.filename or "file.jsonl"
    return await run_in_threadpool(
        sandbox.state.upload_file,
        filename,
        _text(form, "purpose"),
        content,
        _text(form, "file_type"),
    )


async def start_upload(sandbox: Sandbox, request: Request) -> Response:
    form = await _form(request)
    filename = _text(form, "file_name")
    if not filename:
        raise invalid("Missing required parameter: 'file_name'.", param="file_name")
    file_id, signature = sandbox.state.start_upload(
        filename, _text(form, "purpose"), _text(form, "file_type")
    )
    path = UPLOAD_TARGET.format(file_id=file_id)
    target = f"{str(request.base_url).rstrip('/')}{path}?signature={signature}"
    return Response(status_code=302, headers={"location": target, "x-together-file-id": file_id})


async def receive_upload(sandbox: Sandbox, request: Request) -> Response:
    content = await request.body()
    await run_in_threadpool(
        sandbox.state.finish_upload,
        request.path_params["file_id"],
        request.query_params.get("signature"),
        content,
    )
    return Response(status_code=200)


async def preprocess_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.retrieve_file(request.path_params["file_id"])


async def list_files(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.list_files()


async def retrieve_file(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.retrieve_file(request.path_params["file_id"])


async def file_content(sandbox: Sandbox, request: Request) -> Response:
    content = sandbox.state.file_content(request.path_params["file_id"])
    return Response(content, media_type="text/plain")


async def create_job(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    job_request = parse_request(await _json_body(request))
    return await run_in_threadpool(sandbox.state.create_job, job_request)


async def estimate_price(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    job_request = parse_request(await _json_body(request))
    return await run_in_threadpool(sandbox.state.estimate_price, job_request)


async def model_limits(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.model_limits(request.query_params.get("model_name"))


async def list_jobs(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.list_jobs)


def _job_op(method_name: str) -> Handler:
    async def handler(sandbox: Sandbox, request: Request) -> dict[str, Any]:
        operation = getattr(sandbox.state, method_name)
        return await run_in_threadpool(operation, request.path_params["job_id"])

    return handler


def _step_query(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid(f"{name} must be an integer, got {value!r}.", param=name) from None


async def list_metrics(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(
        sandbox.state.list_metrics,
        request.path_params["job_id"],
        _step_query(request, "global_step_from"),
        _step_query(request, "global_step_to"),
    )


async def list_models(sandbox: Sandbox, request: Request) -> Response:
    # A bare JSON array (ModelInfoList), which the operation wrapper would not wrap.
    return JSONResponse(await run_in_threadpool(sandbox.state.list_models))


async def chat_completions(sandbox: Sandbox, request: Request) -> dict[str, Any] | Response:
    body = await _json_body(request)
    completion = await run_in_threadpool(sandbox.state.chat, body)
    if isinstance(body, dict) and body.get("stream"):
        return event_stream_response(streamed(completion))
    return completion


async def create_endpoint(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.create_endpoint, await _json_body(request))


async def list_endpoints(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(sandbox.state.list_endpoints, request.query_params.get("type"))


async def retrieve_endpoint(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(
        sandbox.state.retrieve_endpoint, request.path_params["endpoint_id"]
    )


async def update_endpoint(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    return await run_in_threadpool(
        sandbox.state.update_endpoint, request.path_params["endpoint_id"], body
    )


async def delete_endpoint(sandbox: Sandbox, request: Request) -> Response:
    await run_in_threadpool(sandbox.state.delete_endpoint, request.path_params["endpoint_id"])
    return Response(status_code=204)  # the spec's answer: no body


async def endpoint_bills(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.endpoint_bills()


async def list_hardware(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    return sandbox.state.list_hardware(request.query_params.get("model"))


# (method, path, fault-plan route name, handler). Route names are the OpenAI emulator's
# where the operation matches, so one fault plan can target both emulators.
ROUTE_TABLE: list[tuple[str, str, str, Handler]] = [
    ("POST", "/v1/files/upload", "files.create", upload_file),
    ("POST", "/v1/files", "files.create", start_upload),
    ("PUT", UPLOAD_TARGET, "files.create", receive_upload),
    ("POST", "/v1/files/{file_id}/preprocess", "files.create", preprocess_file),
    ("GET", "/v1/files", "files.list", list_files),
    ("GET", "/v1/files/{file_id}", "files.retrieve", retrieve_file),
    ("GET", "/v1/files/{file_id}/content", "files.content", file_content),
    ("GET", "/v1/fine-tunes/models/limits", "jobs.limits", model_limits),
    ("POST", "/v1/fine-tunes/estimate-price", "jobs.estimate_price", estimate_price),
    ("POST", "/v1/fine-tunes", "jobs.create", create_job),
    ("GET", "/v1/fine-tunes", "jobs.list", list_jobs),
    ("GET", "/v1/fine-tunes/{job_id}", "jobs.retrieve", _job_op("retrieve_job")),
    ("DELETE", "/v1/fine-tunes/{job_id}", "jobs.delete", _job_op("delete_job")),
    ("POST", "/v1/fine-tunes/{job_id}/cancel", "jobs.cancel", _job_op("cancel_job")),
    ("GET", "/v1/fine-tunes/{job_id}/events", "jobs.events", _job_op("list_events")),
    ("GET", "/v1/finetune/download", "jobs.download", download),
    ("GET", "/v1/fine-tunes/{job_id}/metrics", "jobs.metrics", list_metrics),
    ("GET", "/v1/models", "models.list", list_models),
    ("POST", "/v1/chat/completions", "chat.completions", chat_completions),
    # Dedicated endpoints as the vendored spec has them (/v1). The together SDK 3.x calls
    # a newer project-scoped API instead (/v2/projects/{id}/endpoints, with deployments as
    # separate objects) that the spec lacks; it is not emulated.
    ("GET", "/v1/endpoints", "endpoints.list", list_endpoints),
    ("POST", "/v1/endpoints", "endpoints.create", create_endpoint),
    ("GET", "/v1/endpoints/{endpoint_id}", "endpoints.retrieve", retrieve_endpoint),
    ("PATCH", "/v1/endpoints/{endpoint_id}", "endpoints.update", update_endpoint),
    ("DELETE", "/v1/endpoints/{endpoint_id}", "endpoints.delete", delete_endpoint),
    ("GET", "/v1/hardware", "hardware.list", list_hardware),
    # The emulator's own inspection route (not Together's API, which shows an endpoint's
    # bill only in its web console): what each endpoint has cost so far.
    ("GET", "/sandbox/endpoint-bills", "sandbox.endpoint_bills", endpoint_bills),
    (
        "GET",
        "/v1/fine-tunes/{job_id}/checkpoints",
        "jobs.checkpoints",
        _job_op("list_checkpoints"),
    ),
]


def _presigned(request: Request) -> None:
    """The upload target is authorized by the signature in its URL (checked by the
    state), not by a bearer key."""


def create_app(sandbox: Sandbox, api_key: str = SANDBOX_API_KEY) -> ASGIApp:
    """The ASGI app serving the Together emulator's ``sandbox`` to clients with
    ``api_key``."""
    authenticate = key_check(api_key)
    routes = [
        Route(
            path,
            _operation(
                sandbox, name, handler, _presigned if path == UPLOAD_TARGET else authenticate
            ),
            methods=[method],
            name=name,
        )
        for method, path, name, handler in ROUTE_TABLE
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return ConnectionDropper(app)
