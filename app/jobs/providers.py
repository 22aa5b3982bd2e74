"""Build provider instances from ftm's settings (providers/ cannot read app settings)."""

from __future__ import annotations

from sqlalchemy import Engine

from app.settings import Settings, get_settings, provider_settings
from providers.base import Provider, ProviderContext
from providers.errors import ConfigurationError
from providers.registry import ProviderRegistry, discover


class UnknownProvider(ConfigurationError):
    """No provider of that name is installed (or it failed to load)."""


def registry() -> ProviderRegistry:
    """Every installed provider; broken plugins are in ``.broken`` with the reason."""
    return discover()


def provider_context(settings: Settings, engine: Engine | None = None) -> ProviderContext:
    """What every provider gets besides its own settings."""

    def get_engine() -> Engine:
        from app.database import get_engine as database_engine

        return engine or database_engine()

    return ProviderContext(
        home=settings.home,
        jobs_dir=settings.jobs_dir,
        database_url=settings.resolved_database_url,
        engine=get_engine,
    )


def make_provider(
    name: str,
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    reg: ProviderRegistry | None = None,
) -> Provider:
    """An instance of provider ``name``, built by its own `Provider.from_config` from its
    declared settings (``[providers.NAME]``) and ftm's context. The same path for every
    provider, built-in or plugin.

    Raises:
        UnknownProvider: not installed, or its plugin failed to load (the reason is given).
        SettingsError: its settings are invalid (named, with where they came from).
    """
    settings = settings or get_settings()
    reg = reg or registry()
    try:
        cls = reg.get(name)
    except KeyError as exc:
        raise UnknownProvider(str(exc.args[0])) from None
    config = provider_settings(settings, name, cls.settings_model, cls.settings_alias)
    return cls.from_config(config, provider_context(settings, engine))
