"""Azure's control plane for deployments: a fine-tuned model answers only once a
deployment of it exists and has finished provisioning.

    PUT    {management}/subscriptions/S/resourceGroups/G/providers/
           Microsoft.CognitiveServices/accounts/A/deployments/NAME?api-version=V
           {"sku": {"name": "standard", "capacity": 1},
            "properties": {"model": {"format": "OpenAI", "name": MODEL, "version": "1"}}}
    GET    the same URL: ``properties.provisioningState`` is Creating, then Succeeded
           (or Failed)
    DELETE the same URL

PUT is create-or-update by name, so asking twice for the same deployment never makes two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from providers.azure.config import AzureConfig
from providers.errors import ConfigurationError, ProviderError
from providers.types import Deployment

SERVICE = "the Azure management API"


def _deployment(raw: dict[str, Any]) -> Deployment:
    props = raw.get("properties") or {}
    model = (props.get("model") or {}).get("name") or ""
    return Deployment(
        name=str(raw.get("name") or ""),
        model=str(model),
        state=str(props.get("provisioningState") or "Unknown"),
    )


class DeploymentClient:
    """Creates, reads and deletes deployments of one Azure OpenAI resource."""

    def __init__(
        self,
        config: AzureConfig,
        token: Callable[[], str],
        http: httpx.Client | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self._http = http

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.config.timeout_s)
        return self._http

    def _url(self, name: str) -> str:
        return f"{self.config.control_endpoint}{self.config.deployments_path()}/{name}"

    def _send(self, method: str, name: str, action: str, body: Any = None) -> httpx.Response:
        try:
            response = self.http.request(
                method,
                self._url(name),
                params={"api-version": self.config.management_api_version},
                headers={"Authorization": f"Bearer {self._token()}"},
                json=body,
            )
        except httpx.ConnectError as exc:
            raise ProviderError(
                f"could not reach {SERVICE} at {self.config.control_endpoint} while {action}: "
                f"{type(exc).__name__}; check the network and [providers.azure] management_url",
                code="not_sent",
                retryable=True,
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"lost the connection to {SERVICE} while {action} ({type(exc).__name__})",
                code="connection_error",
                retryable=True,
            ) from None
        return response

    def _refusal(self, response: httpx.Response, action: str) -> ProviderError:
        try:
            err = response.json().get("error") or {}
        except ValueError:
            err = {}
        code = str(err.get("code") or f"http_{response.status_code}")
        message = str(err.get("message") or response.reason_phrase)
        text = f"{SERVICE} refused {action} (HTTP {response.status_code}, {code}): {message}"
        if response.status_code in (401, 403):
            return ConfigurationError(
                text + f"; sign in again (`az login`) or set a fresh "
                f"{self.config.management_token_env}, with a role that may create deployments "
                "on the resource",
                code=code,
            )
        return ProviderError(
            text,
            code=code,
            retryable=response.status_code in (408, 409, 429) or response.status_code >= 500,
        )

    def get(self, name: str) -> Deployment | None:
        """The deployment called ``name``; None when there is none."""
        action = f"reading deployment {name}"
        response = self._send("GET", name, action)
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise self._refusal(response, action)
        return _deployment(response.json())

    def put(self, name: str, model: str) -> Deployment:
        """Create (or keep) deployment ``name`` of ``model``."""
        action = f"deploying {model} as {name}"
        body = {
            "sku": {
                "name": self.config.deployment_sku,
                "capacity": self.config.deployment_capacity,
            },
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        }
        response = self._send("PUT", name, action, body)
        if not response.is_success:
            raise self._refusal(response, action)
        return _deployment(response.json())

    def delete(self, name: str) -> None:
        action = f"deleting deployment {name}"
        response = self._send("DELETE", name, action)
        if response.status_code != 404 and not response.is_success:
            raise self._refusal(response, action)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
