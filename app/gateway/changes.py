"""Whether the database changed: what lets the gateway keep a read between requests
without ever serving it after a commit replaced it.

SQLite's ``PRAGMA data_version``, asked on a connection kept for it alone, moves whenever
any other connection, in this process or another, commits (a promotion from the CLI,
the request log's batches, an idle stop). Other databases have no such counter here:
`for_engine` returns None and callers read every time.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine


class DataVersion:
    """SQLite's change counter, read on a connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self._connection: Any = engine.raw_connection()
        self._last: int | None = None
        self._lock = threading.Lock()

    def changed(self) -> bool:
        """True on the first call and whenever another connection committed since the
        previous call."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                version = cursor.execute("PRAGMA data_version").fetchone()[0]
            finally:
                cursor.close()
            changed, self._last = version != self._last, version
            return changed

    def close(self) -> None:
        self._connection.close()


def for_engine(engine: Engine) -> DataVersion | None:
    return DataVersion(engine) if engine.dialect.name == "sqlite" else None
