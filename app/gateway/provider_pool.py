"""One provider instance per provider name for the gateway's life.

Built the way every ftm command builds them (`app.jobs.providers.make_provider`: the
provider's own settings and ftm's context), on first use, then reused: a request must not
pay for constructing a provider, and an instance keeps its SDK client's connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from providers.base import Provider

ProviderFactory = Callable[[str], Provider]


class ProviderPool:
    def __init__(self, engine: Engine, factory: ProviderFactory | None = None) -> None:
        if factory is None:
            from app.jobs.providers import make_provider

            def factory(name: str) -> Provider:
                return make_provider(name, engine=engine)

        self._factory = factory
        self._instances: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Provider:
        """The instance for provider ``name``. Raises what the factory raises
        (`UnknownProvider`, `SettingsError`); a failed build is tried again next time."""
        provider = self._instances.get(name)
        if provider is not None:
            return provider
        with self._lock:
            provider = self._instances.get(name)
            if provider is None:
                provider = self._factory(name)
                self._instances[name] = provider
            return provider

    def close(self) -> None:
        with self._lock:
            instances, self._instances = list(self._instances.values()), {}
        for provider in instances:
            try:
                provider.close()
            except Exception:  # closing is best effort at shutdown
                pass
