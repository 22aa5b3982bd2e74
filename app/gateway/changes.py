"""Whether the database changed: what lets the gateway keep a read between requests
without ever serving it after a commit replaced it.

Each database gives a value, read on a connection kept for it alone, that moves whenever
any other connection, in this process or another, commits (a promotion from the CLI,
the request log's batches, an idle stop):

- SQLite: ``PRAGMA data_version``.
- PostgreSQL: ``pg_current_snapshot()``. Its ``xmax`` is one past the newest finished
  transaction and its ``xip`` lists those running below it, so a commit either drops an
  id from ``xip`` or moves ``xmax``: an unchanged snapshot means no commit since. It is
  the whole server's (another database's commits, or a rollback, also move it): a
  needless re-read now and then, never a stale one.

Other databases: `for_engine` returns None and callers read every time.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine

_QUERIES = {
    "sqlite": "PRAGMA data_version",
    "postgresql": "SELECT pg_current_snapshot()::text",
}


class DataVersion:
    """The database's change marker, read on a connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self._query = _QUERIES[engine.dialect.name]
        self._connection: Any = engine.raw_connection()
        self._autocommit = engine.dialect.name == "postgresql"
        if self._autocommit:
            # No transaction left open between reads (each read sees the latest commits,
            # and the server is not kept "idle in transaction").
            self._connection.driver_connection.autocommit = True
        self._last: object = None
        self._lock = threading.Lock()

    def changed(self) -> bool:
        """True on the first call and whenever another connection committed since the
        previous call."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute(self._query)
                version = cursor.fetchone()[0]
            finally:
                cursor.close()
            changed, self._last = version != self._last, version
            return changed

    def close(self) -> None:
        if self._autocommit:
            self._connection.driver_connection.autocommit = False  # back to the pool as lent
        self._connection.close()


def for_engine(engine: Engine) -> DataVersion | None:
    return DataVersion(engine) if engine.dialect.name in _QUERIES else None
