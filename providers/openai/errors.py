"""Turn SDK exceptions into `ProviderError`s that say what failed, without any secret."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from providers.errors import ConfigurationError, ProviderError

_REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and any ``sk-...`` looking token) removed."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    import re

    return re.sub(r"\bsk-[A-Za-z0-9_\-]{6,}", _REDACTED, text)


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds form only)."""
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


NOT_SENT = "not_sent"
"""The request never reached the service (connecting failed): it cannot have taken effect."""

UNANSWERED = frozenset({"timeout", "connection_error", "http_502", "http_504"})
"""Failures after which the request may still be in flight at the service (no answer came,
or a gateway gave up waiting on the backend): it may take effect later."""


def _never_sent(exc: Exception) -> bool:
    """Whether the SDK's connection error happened before any byte of the request was
    sent: its HTTP library raised it while connecting or waiting for a pooled connection.
    Matched by class name: the SDK's HTTP library (httpx, or its fork httpx2 in recent
    SDKs) is not ours to import."""
    cause = exc.__cause__
    names = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
    return bool(names & {"ConnectError", "ConnectTimeout", "PoolTimeout"})


def translate(
    exc: Exception, action: str, secrets: Iterable[str | None], service: str = "OpenAI"
) -> ProviderError:
    """A `ProviderError` for an SDK exception raised while doing ``action``; messages name
    ``service`` (the same SDK talks to OpenAI and to Azure OpenAI).

    Retryable: timeouts, connection errors, 408/409/429 and 5xx (as the SDK itself).
    """
    import openai

    secrets = list(secrets)
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIConnectionError) and _never_sent(exc):
        return ProviderError(
            f"could not reach {service} while {action} (nothing was sent): "
            f"{redact(str(exc.__cause__ or exc), secrets)}",
            code=NOT_SENT,
            retryable=True,
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(
            f"{service} did not answer in time while {action}", code="timeout", retryable=True
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"lost the connection to {service} while {action}: {redact(str(exc), secrets)}",
            code="connection_error",
            retryable=True,
        )
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        err = err if isinstance(err, dict) else {}
        message = str(err.get("message") or exc.message or f"HTTP {exc.status_code}")
        code = err.get("code") or err.get("type")
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        text = f"{service} refused {action} (HTTP {status}"
        text += f", {code})" if code else ")"
        text += f": {message}"
        cls = (
            ConfigurationError
            if status in (401, 403) and code in (None, "invalid_api_key", "invalid_authentication")
            else ProviderError
        )
        return cls(
            redact(text, secrets),
            code=str(code) if code else f"http_{status}",
            param=err.get("param"),
            retryable=retryable,
            retry_after_s=_retry_after(exc.response.headers),
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"{service} client error while {action}: {redact(str(exc), secrets)}")
    return ProviderError(
        f"unexpected error while {action}: {type(exc).__name__}: {redact(str(exc), secrets)}"
    )
