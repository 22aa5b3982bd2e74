"""Build provider instances from ftm's settings (providers/ cannot read app settings)."""

from __future__ import annotations

from sqlalchemy import Engine

from app.settings import Settings, get_settings
from providers.base import Provider
from providers.errors import ConfigurationError
from providers.registry import ProviderRegistry, discover


class UnknownProvider(ConfigurationError):
    """No provider of that name is installed (or it failed to load)."""


def registry() -> ProviderRegistry:
    """Every installed provider; broken plugins are in ``.broken`` with the reason."""
    return discover()


def openai_config(settings: Settings):
    """The OpenAI provider's config from ``settings.openai`` (the key is not in it: it is
    read from the environment or the key command when the client is built)."""
    from providers.openai.config import OpenAIConfig

    s = settings.openai
    return OpenAIConfig(
        base_url=s.base_url,
        organization=s.organization,
        project=s.project,
        api_key_command=s.api_key_command,
        azure_endpoint=s.azure_endpoint,
        azure_api_version=s.azure_api_version,
        sandbox=s.sandbox,
        sandbox_url=s.sandbox_url,
        timeout_s=s.timeout_s,
        max_retries=s.max_retries,
    )


def make_provider(
    name: str,
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    reg: ProviderRegistry | None = None,
) -> Provider:
    """An instance of provider ``name`` configured from the settings.

    The OpenAI provider gets its config and the database-backed upload cache; a provider
    class with a ``from_settings(settings)`` classmethod is built through it; any other
    (third-party plugins) with no arguments.

    Raises:
        UnknownProvider: not installed, or its plugin failed to load (the reason is given).
    """
    settings = settings or get_settings()
    reg = reg or registry()
    try:
        cls = reg.get(name)
    except KeyError as exc:
        raise UnknownProvider(str(exc.args[0])) from None
    from providers.openai import OpenAIProvider

    if issubclass(cls, OpenAIProvider):
        from app.database import get_engine
        from providers.openai.uploads import SqlUploadCache

        return cls(openai_config(settings), upload_cache=SqlUploadCache(engine or get_engine()))
    factory = getattr(cls, "from_settings", None)
    if callable(factory):
        return factory(settings)
    return cls()
