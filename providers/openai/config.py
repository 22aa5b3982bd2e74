"""How the OpenAI provider reaches the API: configuration, the API key, the SDK client.

The key is read when the client is built (from ``OPENAI_API_KEY`` or the output of a
configured command) and is held only by the SDK client: it is never stored, logged or put
in an error message (see `providers.openai.errors.redact`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from providers.errors import ConfigurationError

if TYPE_CHECKING:  # the SDK is imported only when a client is built
    import openai

SANDBOX_API_KEY = "sk-sandbox-not-a-secret"
"""What the client sends to the local emulator, which accepts any key."""


class OpenAISettings(BaseModel):
    """How the OpenAI provider reaches the API: its settings model, read from
    ``[providers.openai]`` (or the older ``[openai]`` table) of ftm's config. No key here:
    see `resolve_api_key`."""

    base_url: str | None = None
    """Another API base URL (a proxy, a gateway). Unset: the SDK's default."""
    organization: str | None = None
    project: str | None = None
    api_key_command: str | None = None
    """A shell command that prints the API key (e.g. a password manager), used when
    OPENAI_API_KEY is not set. Its output is never stored or logged."""
    azure_endpoint: str | None = None
    """Set to use Azure OpenAI (e.g. https://NAME.openai.azure.com) with the same provider."""
    azure_api_version: str = "2025-04-01-preview"
    sandbox: bool = False
    """Point the provider at the local emulator (`ftm sandbox`) instead of the real API."""
    sandbox_url: str = "http://127.0.0.1:8765/v1"
    timeout_s: float = 60.0
    max_retries: int = 2


@dataclass(frozen=True)
class OpenAIConfig:
    """Everything the provider needs to build its client. Built from `OpenAISettings`
    (tests build it directly, with an explicit key)."""

    base_url: str | None = None
    organization: str | None = None
    project: str | None = None
    api_key_command: str | None = None
    azure_endpoint: str | None = None
    azure_api_version: str = "2025-04-01-preview"
    sandbox: bool = False
    sandbox_url: str = "http://127.0.0.1:8765/v1"
    timeout_s: float = 60.0
    max_retries: int = 2
    create_attempts: int = 8
    """How many times `create` tries before giving up (each retry reconciles first)."""
    file_wait_s: float = 600.0
    """How long to wait for an uploaded file to be processed."""
    api_key: str | None = None
    """An explicit key (tests, scripts). Normally unset: read from the environment."""

    @property
    def endpoint(self) -> str:
        """The API this config talks to; uploaded files are cached per endpoint."""
        if self.sandbox:
            return self.sandbox_url.rstrip("/")
        if self.azure_endpoint:
            return self.azure_endpoint.rstrip("/")
        return (self.base_url or "https://api.openai.com/v1").rstrip("/")


def resolve_api_key(config: OpenAIConfig) -> str:
    """The API key: explicit, else ``OPENAI_API_KEY`` (``AZURE_OPENAI_API_KEY`` for
    Azure), else the output of ``api_key_command``.

    Raises:
        ConfigurationError: no key anywhere, or the command failed (its output is never
            repeated in the message).
    """
    if config.sandbox:
        return config.api_key or SANDBOX_API_KEY
    if config.api_key:
        return config.api_key
    env_names = ["OPENAI_API_KEY"]
    if config.azure_endpoint:
        env_names.insert(0, "AZURE_OPENAI_API_KEY")
    for name in env_names:
        if os.environ.get(name):
            return os.environ[name].strip()
    if config.api_key_command:
        try:
            done = subprocess.run(
                config.api_key_command, shell=True, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(
                f"the configured openai.api_key_command could not run ({type(exc).__name__}); "
                "fix the command in your ftm config or set OPENAI_API_KEY"
            ) from None
        key = done.stdout.strip()
        if done.returncode != 0 or not key:
            raise ConfigurationError(
                f"openai.api_key_command exited with status {done.returncode} and printed "
                f"{'no key' if not key else 'output'}; fix the command in your ftm config "
                "or set OPENAI_API_KEY"
            )
        return key.splitlines()[0].strip()
    raise ConfigurationError(
        "no OpenAI API key: set OPENAI_API_KEY, or openai.api_key_command in the ftm config "
        "(a command that prints the key), or set openai.sandbox = true to use the local "
        "emulator (`ftm sandbox`)"
    )


def build_client(config: OpenAIConfig, api_key: str) -> openai.OpenAI:
    """The SDK client for this config: Azure OpenAI when ``azure_endpoint`` is set."""
    import openai

    if config.azure_endpoint and not config.sandbox:
        return openai.AzureOpenAI(
            azure_endpoint=config.azure_endpoint,
            api_version=config.azure_api_version,
            api_key=api_key,
            organization=config.organization,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        )
    return openai.OpenAI(
        api_key=api_key,
        base_url=config.sandbox_url if config.sandbox else config.base_url,
        organization=None if config.sandbox else config.organization,
        project=None if config.sandbox else config.project,
        timeout=config.timeout_s,
        max_retries=config.max_retries,
    )
