"""Turn ``together`` SDK exceptions into one-line `ProviderError`s without any secret."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from providers.errors import ConfigurationError, ProviderError

_REDACTED = "[redacted]"

NOT_SENT = "not_sent"
"""The request never reached the service (connecting failed): it cannot have taken effect."""

UNANSWERED = frozenset({"timeout", "connection_error", "http_502", "http_504"})
"""Failures after which the request may still be in flight at the service: it may take
effect later, so a create is never sent again after one (only looked up)."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return re.sub(r"\b(tgp_v1_|sk-)[A-Za-z0-9_\-]{6,}", _REDACTED, text)


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def _never_sent(exc: Exception) -> bool:
    """Whether the connection error happened before any byte was sent (connecting, or
    waiting for a pooled connection). Matched by class name: httpx is the SDK's."""
    cause = exc.__cause__
    names = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
    return bool(names & {"ConnectError", "ConnectTimeout", "PoolTimeout"})


def failed_request(exc: Exception) -> tuple[str, str] | None:
    """(method, path) of the HTTP request the SDK exception is about, when it says."""
    request = getattr(exc, "request", None)
    if request is None:
        return None
    try:
        return request.method, request.url.path
    except AttributeError:
        return None


def translate(exc: Exception, action: str, secrets: Iterable[str | None]) -> ProviderError:
    """A `ProviderError` for an exception raised while doing ``action``. Retryable:
    timeouts, connection errors, 408/409/429 and 5xx."""
    import together

    secrets = list(secrets)
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, together.APIConnectionError) and _never_sent(exc):
        return ProviderError(
            f"could not reach Together AI while {action} (nothing was sent): "
            f"{redact(str(exc.__cause__ or exc), secrets)}; check the network or "
            "providers.together.base_url",
            code=NOT_SENT,
            retryable=True,
        )
    if isinstance(exc, together.APITimeoutError):
        return ProviderError(
            f"Together AI did not answer in time while {action}", code="timeout", retryable=True
        )
    if isinstance(exc, together.APIConnectionError):
        return ProviderError(
            f"lost the connection to Together AI while {action}: {redact(str(exc), secrets)}",
            code="connection_error",
            retryable=True,
        )
    if isinstance(exc, together.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        err = err if isinstance(err, dict) else {"message": str(err)}
        message = str(err.get("message") or exc.message or f"HTTP {exc.status_code}")
        code = err.get("code") or err.get("type")
        status = exc.status_code
        text = f"Together AI refused {action} (HTTP {status}" + (f", {code})" if code else ")")
        text += f": {message}"
        if status in (401, 403):
            return ConfigurationError(
                redact(text, secrets)
                + "; set a valid Together AI key in TOGETHER_API_KEY (or the variable "
                "providers.together.api_key_env names), or providers.together.sandbox = true "
                "for the local emulator",
                code=str(code) if code else f"http_{status}",
            )
        return ProviderError(
            redact(text, secrets),
            code=str(code) if code else f"http_{status}",
            param=err.get("param"),
            retryable=status in (408, 409, 429) or status >= 500,
            retry_after_s=_retry_after(exc.response.headers),
        )
    if isinstance(exc, together.TogetherError):
        first_line = redact(str(exc), secrets).strip().splitlines() or [type(exc).__name__]
        return ProviderError(f"Together AI client error while {action}: {first_line[0]}")
    return ProviderError(
        f"unexpected error while {action}: {type(exc).__name__}: {redact(str(exc), secrets)}"
    )
