"""The application's database: one engine per URL, migrated to the newest schema on open."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from app.settings import get_settings
from db.engine import make_engine

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The engine for ``url``, created and migrated on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            from db import migrate  # alembic is slow to import; only opening a DB needs it

            engine = make_engine(url)
            if migrate.current_revision(engine) != migrate.head_revision():
                migrate.upgrade(engine)
            _engines[url] = engine
        return engine


def get_engine() -> Engine:
    """The engine for the configured database, with migrations applied."""
    return engine_for(get_settings().resolved_database_url)


def reset() -> None:
    """Dispose of engines and forget settings (tests that change FTM_HOME call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
    get_settings.cache_clear()
