"""Errors in the API's own shape: ``{"error": {"message", "type", "param", "code"}}``.

Handlers raise :class:`ApiError`; the app turns it into the JSON body and status the real
API would send. The helpers below hold the wording of the common cases in one place.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error response: HTTP status plus the body's four fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """400: the request itself is wrong."""
    return ApiError(400, message, param=param, code=code)


def missing_key() -> ApiError:
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
        "as the password field (with blank username) if you're accessing the API from "
        "your browser and are prompted for a username and password. You can obtain an API "
        "key from https://platform.openai.com/account/api-keys.",
    )


def bad_key(key: str) -> ApiError:
    # The real API shows only the key's ends; never echo a whole secret.
    shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
    return ApiError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def no_such_file(file_id: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such File object: {file_id}", param=param)


def no_such_job(job_id: str) -> ApiError:
    return ApiError(
        404,
        f"Could not find fine-tuning job: {job_id}",
        param="fine_tuning_job_id",
        code="fine_tuning_job_not_found",
    )


def no_such_model(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def not_found_route(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def rate_limited(retry_after_s: float) -> ApiError:
    ms = max(1, round(retry_after_s * 1000))
    seconds = max(1, -(-ms // 1000))  # Retry-After is whole seconds, at least 1
    return ApiError(
        429,
        "Rate limit reached for requests (simulated by the ftm sandbox). "
        f"Please try again in {ms}ms.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": str(seconds), "retry-after-ms": str(ms)},
    )


def server_error() -> ApiError:
    return ApiError(
        500,
        "The server had an error while processing your request. Sorry about that! "
        "(simulated by the ftm sandbox)",
        type="server_error",
    )


def unavailable() -> ApiError:
    return ApiError(
        503,
        "The engine is currently overloaded, please try again later. "
        "(simulated by the ftm sandbox)",
        type="server_error",
        code="service_unavailable",
    )
