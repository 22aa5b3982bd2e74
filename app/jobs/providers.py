"""Build provider instances from ftm's settings (providers/ cannot read app settings)."""

from __future__ import annotations

import sys
from functools import lru_cache

from sqlalchemy import Engine

from app.settings import Settings, get_settings, provider_settings
from providers.base import Capabilities, Provider, ProviderContext
from providers.errors import ConfigurationError
from providers.pricing import PriceTable
from providers.registry import ProviderRegistry, discover


class UnknownProvider(ConfigurationError):
    """No provider of that name is installed (or it failed to load)."""


def registry() -> ProviderRegistry:
    """Every installed provider; broken plugins are in ``.broken`` with the reason."""
    return discover()


@lru_cache(maxsize=4)
def _installed(search_path: tuple[str, ...]) -> ProviderRegistry:
    """The installed providers, discovered once per import path: capabilities are asked
    per job (the poller), and discovery scans every distribution. A changed ``sys.path``
    (a plugin directory added at run time) is looked at afresh."""
    return discover()


def capabilities_of(name: str) -> Capabilities:
    """What provider ``name`` declares it can do (`Provider.capabilities`), read from its
    class: nothing is built or connected. The core decides by these flags, never by the
    name. A provider no longer installed (a job row from a removed plugin) gets the
    defaults: hosted, nothing billed per token."""
    try:
        return _installed(tuple(sys.path)).get(name).capabilities
    except KeyError:
        return Capabilities()


def provider_class(name: str) -> type[Provider] | None:
    """The installed class of provider ``name`` (for what it declares as data, e.g. its
    training-recipe translation); nothing is built. None when not installed."""
    try:
        return _installed(tuple(sys.path)).get(name)
    except KeyError:
        return None


def default_provider(names: list[str]) -> str | None:
    """The provider a new launch starts with: the first hosted one (training on this
    machine is a deliberate choice) that is configured (`Provider.configured`), else the
    first hosted one, else the first; None when none is installed."""
    hosted = [name for name in names if not capabilities_of(name).runs_locally]
    ready = [name for name in hosted if _configured(name)]
    return (ready or hosted or names or [None])[0]


def _configured(name: str) -> bool:
    """Whether provider ``name`` says its settings are complete. One that cannot even be
    built (not installed, invalid settings) is not."""
    try:
        provider = make_provider(name)
    except Exception:  # any failure to build means "not ready to launch on"
        return False
    try:
        return provider.configured()
    finally:
        provider.close()


def installed_classes() -> dict[str, type[Provider]]:
    """Every installed provider's class by registry name (discovered once per import
    path, like `capabilities_of`)."""
    return dict(_installed(tuple(sys.path)).classes)


def price_tables() -> dict[str, PriceTable]:
    """The prices every installed provider declares (`Provider.pricing`), by name, in
    the order new launches offer them (`default_provider` first); providers that declare
    none are left out. Declared data only: nothing is built or connected."""
    tables = {name: cls.pricing() for name, cls in installed_classes().items()}
    declared = sorted(name for name, table in tables.items() if table is not None)
    first = default_provider(declared)
    ordered = sorted(declared, key=lambda name: name != first)
    return {name: table for name in ordered if (table := tables[name]) is not None}


def default_method_of(name: str) -> str | None:
    """The training method provider ``name`` uses when none is given
    (`Provider.default_method`); None when it is not installed."""
    try:
        return _installed(tuple(sys.path)).get(name).default_method()
    except KeyError:
        return None


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
        storage=settings.file_store,
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
