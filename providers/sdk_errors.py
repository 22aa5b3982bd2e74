"""What the HTTP SDK providers (OpenAI, Azure OpenAI, Together AI) share when they turn an
SDK exception into a `ProviderError`: the send-state codes the create-exactly-once rules
read, secret scrubbing, ``Retry-After`` parsing, the never-sent test and which HTTP
statuses are worth retrying. Each provider's errors module keeps only its service's
specifics (its SDK's classes, its messages, its key's token shape, its 401/403 advice)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

NOT_SENT = "not_sent"
"""The request never reached the service (connecting failed): it cannot have taken effect."""

UNANSWERED = frozenset({"timeout", "connection_error", "http_502", "http_504"})
"""Failures after which the request may still be in flight at the service (no answer came,
or a gateway gave up waiting on the backend): it may take effect later, so a create is
never sent again after one (only looked up)."""


def redact(text: str, secrets: Iterable[str | None], token_pattern: str) -> str:
    """``text`` with every secret removed, and any token matching ``token_pattern`` (the
    service's key shape) too, in case a key we were not told about shows up."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return re.sub(token_pattern, REDACTED, text)


def retry_after(headers: Any) -> float | None:
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


def never_sent(exc: Exception) -> bool:
    """Whether the SDK's connection error happened before any byte of the request was
    sent: its HTTP library raised it while connecting or waiting for a pooled connection.
    Matched by class name: the SDK's HTTP library (httpx, or its fork httpx2 in recent
    SDKs) is not ours to import."""
    cause = exc.__cause__
    names = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
    return bool(names & {"ConnectError", "ConnectTimeout", "PoolTimeout"})


def retryable_status(status: int) -> bool:
    """Whether an HTTP refusal may succeed when sent again (as the SDKs themselves judge):
    408 timeout, 409 conflict, 429 rate limit and every 5xx."""
    return status in (408, 409, 429) or status >= 500


def refusal_details(exc: Any) -> tuple[dict[str, Any], str, str | None]:
    """(error object, message, code) from an SDK's HTTP status error (``exc.body``,
    ``exc.message``, ``exc.status_code``): both SDKs carry the service's JSON error as
    ``{"error": {...}}`` or bare. An ``error`` that is plain text is kept as the message
    (the stricter of the two copies this replaced: the other dropped it for the SDK's
    generic ``Error code: ...`` text)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body)
    err = err if isinstance(err, dict) else {"message": str(err)}
    message = str(err.get("message") or exc.message or f"HTTP {exc.status_code}")
    code = err.get("code") or err.get("type")
    return err, message, (str(code) if code else None)
