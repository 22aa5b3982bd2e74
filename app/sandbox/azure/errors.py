"""Azure's own error shape, ``{"error": {"code", "message"}}``, for what Azure answers
before the OpenAI handlers run (credentials, api-version, deployments)."""

from __future__ import annotations

from typing import Any

from app.sandbox.errors import ApiError


class AzureApiError(ApiError):
    """An error answered in Azure's shape (code and message only)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message, code=code)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def access_denied() -> AzureApiError:
    """A wrong or missing ``api-key``: Azure's words."""
    return AzureApiError(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    )


def resource_not_found() -> AzureApiError:
    """No ``api-version``: Azure answers 404, not 400."""
    return AzureApiError(404, "404", "Resource not found")


def version_not_supported() -> AzureApiError:
    return AzureApiError(400, "BadRequest", "API version not supported")


def deployment_not_found() -> AzureApiError:
    return AzureApiError(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    )


def missing_management_version() -> AzureApiError:
    return AzureApiError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def management_unauthorized(missing: bool) -> AzureApiError:
    if missing:
        return AzureApiError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    return AzureApiError(401, "InvalidAuthenticationToken", "The access token is invalid.")


def not_deployable(model: str) -> AzureApiError:
    return AzureApiError(
        400,
        "DeploymentModelNotSupported",
        f"The model '{model}' is not found or not ready for deployment in this resource.",
    )
