"""How the Azure OpenAI provider reaches its resource: settings, keys, the SDK client.

Two planes, two credentials, neither ever stored:
- the data plane (files, fine-tuning jobs, chat through a deployment) at
  ``https://RESOURCE.openai.azure.com/openai/...?api-version=V`` with an ``api-key`` header;
- the control plane (creating the deployment a fine-tuned model answers from) at
  ``https://management.azure.com/subscriptions/.../deployments/NAME`` with a bearer token
  (``az account get-access-token``).
Both are read from the environment or a command when first needed.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

from providers.errors import ConfigurationError

if TYPE_CHECKING:  # the SDK is imported only when a client is built
    import openai

SANDBOX_API_KEY = "00000000000000000000000000a2a2a2"
"""The data-plane key the sandbox (``ftm sandbox --provider azure``) accepts: Azure keys
are 32 hex characters. Not a secret."""
SANDBOX_MANAGEMENT_TOKEN = "azure-sandbox-management-token"
"""The bearer token the sandbox's control plane accepts. Not a secret."""
DEFAULT_API_VERSION = "2025-04-01-preview"
MANAGEMENT_API_VERSION = "2024-10-01"
MAX_DEPLOYMENT_NAME = 64


class AzureSettings(BaseModel):
    """Azure OpenAI, read from ``[providers.azure]`` of ftm's config (or
    ``FTM_PROVIDERS__AZURE__FIELD``). No key or token here: they come from the
    environment variables or commands named below, when first needed."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = None
    """The resource's endpoint, e.g. https://RESOURCE.openai.azure.com (Keys and Endpoint
    in the Azure portal)."""
    api_version: str = DEFAULT_API_VERSION
    """The data plane's ``api-version`` query parameter (fine-tuning needs a recent one)."""
    api_key_env: str = "AZURE_OPENAI_API_KEY"
    """The environment variable holding the resource's key."""
    api_key_command: str | None = None
    """A command that prints the key (a password manager), used when the variable is unset."""
    subscription_id: str | None = None
    """The Azure subscription of the resource: needed to create deployments."""
    resource_group: str | None = None
    """The resource group of the resource: needed to create deployments."""
    resource_name: str | None = None
    """The Azure OpenAI resource (account) name. Default: the endpoint's first label."""
    management_url: str = "https://management.azure.com"
    management_api_version: str = MANAGEMENT_API_VERSION
    management_token_env: str = "AZURE_MANAGEMENT_TOKEN"
    """The environment variable holding a control-plane bearer token."""
    management_token_command: str | None = (
        "az account get-access-token --resource https://management.azure.com "
        "--query accessToken -o tsv"
    )
    """A command that prints a control-plane token, used when the variable is unset."""
    deployment_prefix: str = "ftm-"
    """Deployments ftm creates are named PREFIX + the fine-tuned model's suffix and id."""
    base_deployments: dict[str, str] = {}
    """Base model -> the name of your deployment of it (for evaluating base models).
    Unlisted: a deployment named like the model itself."""
    deployment_sku: str = "standard"
    deployment_capacity: int = 1
    """Capacity units of each deployment ftm creates (thousands of tokens per minute)."""
    auto_deploy: bool = True
    """Deploy a fine-tuned model as soon as its job succeeds (hosting is billed per hour
    from then on); off: deploy on first use."""
    deploy_wait_s: float = 900.0
    """How long a call waits for a deployment to become ready."""
    sandbox: bool = False
    """Talk to the local emulator (`ftm sandbox --provider azure`) instead of Azure."""
    sandbox_url: str = "http://127.0.0.1:8765"
    timeout_s: float = 60.0
    max_retries: int = 2


@dataclass(frozen=True)
class AzureConfig:
    """Everything the provider needs: `AzureSettings` plus what tests and scripts pass
    directly (an explicit key and token)."""

    endpoint: str | None = None
    api_version: str = DEFAULT_API_VERSION
    api_key_env: str = "AZURE_OPENAI_API_KEY"
    api_key_command: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    resource_name: str | None = None
    management_url: str = "https://management.azure.com"
    management_api_version: str = MANAGEMENT_API_VERSION
    management_token_env: str = "AZURE_MANAGEMENT_TOKEN"
    management_token_command: str | None = None
    deployment_prefix: str = "ftm-"
    base_deployments: tuple[tuple[str, str], ...] = ()
    deployment_sku: str = "standard"
    deployment_capacity: int = 1
    auto_deploy: bool = True
    deploy_wait_s: float = 900.0
    sandbox: bool = False
    sandbox_url: str = "http://127.0.0.1:8765"
    timeout_s: float = 60.0
    max_retries: int = 2
    create_attempts: int = 8
    file_wait_s: float = 600.0
    api_key: str | None = None
    """An explicit key (tests, scripts). Normally unset: read when the client is built."""
    management_token: str | None = None
    """An explicit control-plane token (tests, scripts). Normally unset."""

    @classmethod
    def from_settings(cls, settings: AzureSettings) -> AzureConfig:
        values = settings.model_dump()
        values["base_deployments"] = tuple(sorted(settings.base_deployments.items()))
        return cls(**values)

    @property
    def data_endpoint(self) -> str:
        """The data plane's root (the emulator's in sandbox mode).

        Raises:
            ConfigurationError: no endpoint is configured.
        """
        if self.sandbox:
            return self.sandbox_url.rstrip("/")
        if not self.endpoint:
            raise ConfigurationError(
                "Azure OpenAI has no endpoint: set [providers.azure] endpoint = "
                '"https://RESOURCE.openai.azure.com" in the ftm config (or '
                "FTM_PROVIDERS__AZURE__ENDPOINT), or sandbox = true for the local emulator"
            )
        return self.endpoint.rstrip("/")

    @property
    def control_endpoint(self) -> str:
        return self.sandbox_url.rstrip("/") if self.sandbox else self.management_url.rstrip("/")

    def deployments_path(self) -> str:
        """The control-plane path of the resource's deployments.

        Raises:
            ConfigurationError: the subscription or resource group is not configured.
        """
        # The emulator serves any subscription and group: sandbox mode needs none set.
        subscription = self.subscription_id or ("sandbox" if self.sandbox else None)
        group = self.resource_group or ("sandbox" if self.sandbox else None)
        missing = [
            name
            for name, value in (("subscription_id", subscription), ("resource_group", group))
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"Azure OpenAI cannot create deployments without {' and '.join(missing)}: "
                f"set [providers.azure] {', '.join(missing)} in the ftm config (the resource's "
                "Overview page in the Azure portal shows them)"
            )
        account = self.resource_name or resource_from_endpoint(self.data_endpoint)
        return (
            f"/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{account}/deployments"
        )


def resource_from_endpoint(endpoint: str) -> str:
    """``https://RESOURCE.openai.azure.com`` -> ``RESOURCE``."""
    host = urlparse(endpoint).hostname or endpoint
    return host.split(".")[0]


def deployment_name(model: str, prefix: str) -> str:
    """A valid, deterministic deployment name for a fine-tuned model: the same model always
    gets the same name, so creating it twice is harmless. Azure allows letters, digits,
    ``-``, ``_`` and ``.``, up to 64 characters; the tail (the model's unique id) is kept."""
    if model.startswith("ft:"):
        parts = [p for p in model.split(":")[3:] if p]  # suffix and id; base and org dropped
        body = "-".join(parts) or model
    else:
        body = model
    body = re.sub(r"[^A-Za-z0-9_.-]+", "-", body).strip("-")
    return (prefix + body)[-MAX_DEPLOYMENT_NAME:].lstrip("-._") or "ftm-model"


def _secret(explicit: str | None, env: str, command: str | None, what: str, fix: str) -> str:
    """A credential: explicit, else the environment variable ``env``, else ``command``'s
    first line. Never repeated in an error."""
    if explicit:
        return explicit
    if os.environ.get(env, "").strip():
        return os.environ[env].strip()
    if command:
        try:
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(
                f"Azure OpenAI: the command for the {what} could not run "
                f"({type(exc).__name__}); {fix}"
            ) from None
        out = done.stdout.strip()
        if done.returncode == 0 and out:
            return out.splitlines()[0].strip()
        raise ConfigurationError(
            f"Azure OpenAI: the command for the {what} exited with status {done.returncode} "
            f"and printed {'nothing' if not out else 'no usable value'}; {fix}"
        )
    raise ConfigurationError(f"Azure OpenAI has no {what}: {fix}")


def resolve_api_key(config: AzureConfig) -> str:
    """The data-plane key (the sandbox's fixed one in sandbox mode, unless explicit)."""
    if config.sandbox:
        return config.api_key or SANDBOX_API_KEY
    return _secret(
        config.api_key,
        config.api_key_env,
        config.api_key_command,
        "API key",
        f"set {config.api_key_env} to a key of the resource (Keys and Endpoint in the Azure "
        "portal), or [providers.azure] api_key_command in the ftm config",
    )


def resolve_management_token(config: AzureConfig) -> str:
    """The control-plane bearer token (the sandbox's fixed one in sandbox mode)."""
    if config.sandbox:
        return config.management_token or SANDBOX_MANAGEMENT_TOKEN
    return _secret(
        config.management_token,
        config.management_token_env,
        config.management_token_command,
        "management token (needed to create deployments)",
        f"run `az login`, or set {config.management_token_env} to the output of `az account "
        "get-access-token --resource https://management.azure.com --query accessToken -o "
        "tsv`",
    )


def build_client(config: AzureConfig, api_key: str) -> openai.AzureOpenAI:
    """The SDK's Azure client: ``api-key`` header, ``api-version`` on every request, the
    ``/openai/...`` URL shape, and deployment names in place of model names for inference.
    ftm retries by itself: the SDK must not.

    Raises:
        ConfigurationError: no endpoint or no api_version is configured.
    """
    import openai

    if not config.api_version:
        raise ConfigurationError(
            "Azure OpenAI needs an api-version on every request: set [providers.azure] "
            f'api_version = "{DEFAULT_API_VERSION}" in the ftm config (or '
            "FTM_PROVIDERS__AZURE__API_VERSION)"
        )
    return openai.AzureOpenAI(
        azure_endpoint=config.data_endpoint,
        api_version=config.api_version,
        api_key=api_key,
        timeout=config.timeout_s,
        max_retries=0,
    )
