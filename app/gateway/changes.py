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
        self._engine = engine
        self._query = _QUERIES[engine.dialect.name]
        self._autocommit = engine.dialect.name == "postgresql"
        self._connection: Any = self._connect()
        self._last: object = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        connection = self._engine.raw_connection()
        if self._autocommit:
            # No transaction left open between reads (each read sees the latest commits,
            # and the server is not kept "idle in transaction").
            connection.driver_connection.autocommit = True
        return connection

    def changed(self) -> bool:
        """True on the first call and whenever another connection committed since the
        previous call."""
        with self._lock:
            try:
                version = self._read()
            except Exception:  # noqa: BLE001 - the connection was lost (a server restart)
                # Unknown, so changed: the caller reads afresh (and meets the outage there,
                # if it lasts). A new connection's first value is the baseline from now on
                # (SQLite's counter is per connection); if none can be had yet, the next
                # call tries again.
                self._drop()
                try:
                    self._last = self._read()
                except Exception:  # noqa: BLE001 - still down
                    self._drop()
                    self._last = None
                return True
            changed, self._last = version != self._last, version
            return changed

    def _read(self) -> object:
        if self._connection is None:
            self._connection = self._connect()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._query)
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # never back to the pool
            except Exception:  # noqa: BLE001 - it is gone either way
                pass

    def close(self) -> None:
        with self._lock:
            if self._connection is None:
                return
            if self._autocommit:  # back to the pool as it was lent
                self._connection.driver_connection.autocommit = False
            self._connection.close()
            self._connection = None


def for_engine(engine: Engine) -> DataVersion | None:
    return DataVersion(engine) if engine.dialect.name in _QUERIES else None
