"""How the Together provider reaches the API: its settings, the API key, the SDK client.

The key is read when the client is built (from the environment variable the settings name,
``TOGETHER_API_KEY`` by default, or the output of a configured command) and is held only
by the SDK client: never stored, logged or put in an error message.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from providers.errors import ConfigurationError

SANDBOX_API_KEY = "together-sandbox-not-a-secret"
"""What the client sends to the local emulator, which accepts any key."""
DEFAULT_BASE_URL = "https://api.together.xyz"


class TogetherSettings(BaseModel):
    """The Together provider's settings: ``[providers.together]`` in ftm's config, or
    ``FTM_PROVIDERS__TOGETHER__FIELD``. No key here: see `resolve_api_key`."""

    base_url: str | None = None
    """Another API root (a proxy); without ``/v1``, which the SDK adds. Unset: Together's."""
    api_key_env: str = "TOGETHER_API_KEY"
    """The environment variable the API key is read from."""
    api_key_command: str | None = None
    """A shell command that prints the API key (e.g. a password manager), used when the
    environment variable is not set. Its output is never stored or logged."""
    sandbox: bool = False
    """Point the provider at the local emulator (`ftm sandbox --provider together`)."""
    sandbox_url: str = "http://127.0.0.1:8765"
    timeout_s: float = 60.0
    max_retries: int = 2
    """Retries of calls that are safe to repeat (ftm's own; the SDK's are off)."""
    endpoint_hardware: str = "1x_nvidia_h100_80gb_sxm"
    """The hardware of the dedicated endpoint ftm creates to serve a fine-tune (one GPU:
    the smallest Together serves a LoRA fine-tune of the suggested models on, and the one
    its declared hourly fee prices). ``GET /v1/hardware`` lists the ids."""
    deploy_wait_s: float = 1800.0
    """How long `deploy` waits for an endpoint to start before giving up (it keeps
    starting, and billing, at Together: ftm finds and reuses it next time)."""


@dataclass(frozen=True)
class TogetherConfig:
    """Everything the provider needs to build its client (tests build it directly)."""

    base_url: str | None = None
    api_key_env: str = "TOGETHER_API_KEY"
    api_key_command: str | None = None
    sandbox: bool = False
    sandbox_url: str = "http://127.0.0.1:8765"
    timeout_s: float = 60.0
    max_retries: int = 2
    endpoint_hardware: str = "1x_nvidia_h100_80gb_sxm"
    deploy_wait_s: float = 1800.0
    create_attempts: int = 8
    """How many times `create` tries before giving up (each retry reconciles first)."""
    api_key: str | None = None
    """An explicit key (tests, scripts). Normally unset: read from the environment."""

    @property
    def endpoint(self) -> str:
        if self.sandbox:
            return self.sandbox_url.rstrip("/")
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")


def resolve_api_key(config: TogetherConfig) -> str:
    """The API key: explicit, else the configured environment variable, else the output of
    ``api_key_command``.

    Raises:
        ConfigurationError: no key anywhere, or the command failed (its output is never
            repeated in the message).
    """
    if config.api_key:
        return config.api_key
    if config.sandbox:
        return SANDBOX_API_KEY
    if os.environ.get(config.api_key_env, "").strip():
        return os.environ[config.api_key_env].strip()
    if config.api_key_command:
        try:
            done = subprocess.run(
                config.api_key_command, shell=True, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(
                f"providers.together.api_key_command could not run ({type(exc).__name__}); "
                f"fix the command in your ftm config or set {config.api_key_env}"
            ) from None
        key = done.stdout.strip()
        if done.returncode != 0 or not key:
            raise ConfigurationError(
                f"providers.together.api_key_command exited with status {done.returncode} and "
                f"printed {'no key' if not key else 'output'}; fix the command in your ftm "
                f"config or set {config.api_key_env}"
            )
        return key.splitlines()[0].strip()
    raise ConfigurationError(
        f"no Together AI API key: set {config.api_key_env}, or providers.together."
        "api_key_command in the ftm config (a command that prints the key), or "
        "providers.together.sandbox = true to use the local emulator "
        "(`ftm sandbox --provider together`)"
    )


_SDK_LOCK = threading.Lock()


def build_client(config: TogetherConfig, api_key: str) -> Any:
    """The SDK client; its own retries are off (ftm retries, reconciling creates).

    Built under one process-wide lock, with the resources ftm uses touched once: the SDK
    imports them lazily, and many threads doing that first import at once (16 launches in
    parallel) were seen to meet a half-imported httpx."""
    with _SDK_LOCK:
        try:
            import together
            import together.lib  # noqa: F401  (the file checker, imported under the lock too)
        except ImportError as exc:
            raise ConfigurationError(
                f"the together SDK is not installed ({exc.msg}); install ftm's together extra: "
                "pip install 'ftm[together]'"
            ) from None

        client = together.Together(
            api_key=api_key,
            base_url=config.endpoint,
            timeout=config.timeout_s,
            max_retries=0,
        )
        for resource in ("files", "fine_tuning", "chat"):
            getattr(client, resource)
        return client
