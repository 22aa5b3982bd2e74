"""Turn ``together`` SDK exceptions into one-line `ProviderError`s without any secret."""

from __future__ import annotations

from collections.abc import Iterable

from providers import sdk_errors
from providers.errors import ConfigurationError, ProviderError
from providers.sdk_errors import NOT_SENT, UNANSWERED

__all__ = ["NOT_SENT", "UNANSWERED", "failed_request", "redact", "translate"]

# Together's key shape (and OpenAI's, often pasted by mistake): scrubbed even when it is
# not one we were told about.
_KEY_PATTERN = r"\b(tgp_v1_|sk-)[A-Za-z0-9_\-]{6,}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    return sdk_errors.redact(text, secrets, _KEY_PATTERN)


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
    if isinstance(exc, together.APIConnectionError) and sdk_errors.never_sent(exc):
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
        err, message, code = sdk_errors.refusal_details(exc)
        status = exc.status_code
        text = f"Together AI refused {action} (HTTP {status}" + (f", {code})" if code else ")")
        text += f": {message}"
        if status in (401, 403):
            return ConfigurationError(
                redact(text, secrets)
                + "; set a valid Together AI key in TOGETHER_API_KEY (or the variable "
                "providers.together.api_key_env names), or providers.together.sandbox = true "
                "for the local emulator",
                code=code or f"http_{status}",
            )
        return ProviderError(
            redact(text, secrets),
            code=code or f"http_{status}",
            param=err.get("param"),
            retryable=sdk_errors.retryable_status(status),
            retry_after_s=sdk_errors.retry_after(exc.response.headers),
        )
    if isinstance(exc, together.TogetherError):
        first_line = redact(str(exc), secrets).strip().splitlines() or [type(exc).__name__]
        return ProviderError(f"Together AI client error while {action}: {first_line[0]}")
    return ProviderError(
        f"unexpected error while {action}: {type(exc).__name__}: {redact(str(exc), secrets)}"
    )
