"""The gateway's failures as OpenAI error bodies.

Every answer the gateway refuses or cannot give is ``{"error": {"message", "type",
"param", "code"}}`` with the status an OpenAI client expects, so the SDKs raise their usual
exception classes (401 AuthenticationError, 404 NotFoundError, 5xx APIStatusError...) and
the message names the cause and what to do. Never a provider key: messages from upstream
pass through `redact` first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.responses import Response

from app.sandbox.errors import ApiError


class GatewayError(ApiError):
    """A request the gateway answers with an OpenAI error body: the emulator's
    `app.sandbox.errors.ApiError` (one definition of that body), with a code always set
    and the gateway's ways of sending it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, type=type, param=param, code=code, headers=headers)

    def response(self, request_id: str | None = None) -> Response:
        headers = dict(self.headers)
        if request_id:
            headers["x-request-id"] = request_id
        return Response(
            json.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=headers,
        )

    def sse_event(self) -> bytes:
        """The error as one server-sent event: what a stream that already started (status
        200 sent) can still say before it ends."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\n"


def invalid_key() -> GatewayError:
    return GatewayError(
        401,
        "Missing, unknown or revoked gateway key. Send `Authorization: Bearer ftm_gw_...` "
        "with a key from `ftm keys create NAME` (see `ftm keys list`).",
        code="invalid_api_key",
    )


def bad_request(
    message: str, *, param: str | None = None, code: str = "invalid_request"
) -> GatewayError:
    return GatewayError(400, message, code=code, param=param)


def unknown_model(message: str) -> GatewayError:
    return GatewayError(404, message, code="model_not_found", param="model")


def not_serving(task: str, alias: str, provider: str, model: str) -> GatewayError:
    return GatewayError(
        503,
        f"{task}:{alias} is held by {model} on {provider}, which answers only from a "
        "deployment, and none of it is running. Start one with `ftm deploy "
        f"{task}:{alias}` (see `ftm deployments list`).",
        code="deployment_not_running",
        type="server_error",
    )


def provider_not_ready(provider: str, reason: str) -> GatewayError:
    """The holder's provider cannot be built or asked (its settings, its key)."""
    return GatewayError(
        502,
        f"the gateway cannot reach provider {provider}: {reason}",
        code="provider_unavailable",
        type="server_error",
    )


# Upstream statuses that are the client's request at fault: relayed as they are. Anything
# else (the provider's key refused, its model gone, its servers failing) is the gateway's
# upstream failing: 502.
RELAYED_STATUSES = frozenset({400, 413, 422, 429})


def upstream_failed(
    provider: str, model: str, status: int, message: str, retry_after: str | None = None
) -> GatewayError:
    relayed = status in RELAYED_STATUSES
    headers = {"retry-after": retry_after} if retry_after and status == 429 else None
    return GatewayError(
        status if relayed else 502,
        f"provider {provider} answered {status} for {model}: {message}",
        code="rate_limit_exceeded" if status == 429 else "provider_error",
        type="invalid_request_error" if relayed else "server_error",
        headers=headers,
    )


def upstream_unreachable(provider: str, model: str, what: str, *, timeout: bool) -> GatewayError:
    return GatewayError(
        504 if timeout else 502,
        f"provider {provider} {'did not answer in time' if timeout else 'could not be reached'} "
        f"for {model} ({what}); the gateway is fine, try again",
        code="provider_timeout" if timeout else "provider_unreachable",
        type="server_error",
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (a provider key an upstream may echo) masked."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


def upstream_message(content: bytes) -> str:
    """What an upstream error body says: its OpenAI ``error.message``, else its text, cut
    to one short line."""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _one_line(error["message"])
        if isinstance(error, str):
            return _one_line(error)
        if isinstance(data.get("message"), str):
            return _one_line(data["message"])
    return _one_line(content.decode("utf-8", "replace")) or "(no message)"


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
