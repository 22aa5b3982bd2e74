"""Turn SDK exceptions into `ProviderError`s that say what failed, without any secret."""

from __future__ import annotations

from collections.abc import Iterable

from providers import sdk_errors
from providers.errors import ConfigurationError, ProviderError
from providers.sdk_errors import NOT_SENT, UNANSWERED

__all__ = ["NOT_SENT", "UNANSWERED", "redact", "translate"]

# An OpenAI key's shape: scrubbed even when it is not one we were told about.
_KEY_PATTERN = r"\bsk-[A-Za-z0-9_\-]{6,}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and any ``sk-...`` looking token) removed."""
    return sdk_errors.redact(text, secrets, _KEY_PATTERN)


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
    if isinstance(exc, openai.APIConnectionError) and sdk_errors.never_sent(exc):
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
        err, message, code = sdk_errors.refusal_details(exc)
        status = exc.status_code
        retryable = sdk_errors.retryable_status(status)
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
            code=code or f"http_{status}",
            param=err.get("param"),
            retryable=retryable,
            retry_after_s=sdk_errors.retry_after(exc.response.headers),
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"{service} client error while {action}: {redact(str(exc), secrets)}")
    return ProviderError(
        f"unexpected error while {action}: {type(exc).__name__}: {redact(str(exc), secrets)}"
    )
