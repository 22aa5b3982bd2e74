"""The gateway's key check: `app.gateway.keys.verify`, with a tiny cache that cannot
outlive a revocation.

A cached answer is used only while the database has not changed since it was cached
(`app.gateway.changes`: SQLite's ``PRAGMA data_version`` moves whenever any other
connection, in any process, commits). So a revoked key is refused on the very next
request, as without the cache, while a busy gateway skips most key reads (any commit,
the request log's batches included, empties the cache; that is often enough to stay
correct and rare enough to help). Entries also expire after `KEY_CACHE_S`, so
`verify` still notes a key's last use. Databases other than SQLite: no cache.
"""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import Engine

from app.gateway import changes
from app.gateway.keys import LAST_USED_RESOLUTION, verify

KEY_CACHE_S = LAST_USED_RESOLUTION.total_seconds() / 2


class KeyCheck:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._version = changes.for_engine(engine)
        self._names: dict[str, tuple[str, float]] = {}  # sha256 of the key -> (name, when)
        self._lock = threading.Lock()

    def name_of(self, key: str) -> str | None:
        """The live key's name, or None (unknown, malformed or revoked)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            if self._version is not None and self._version.changed():
                self._names.clear()
            hit = self._names.get(digest)
            if hit is not None and now - hit[1] < KEY_CACHE_S:
                return hit[0]
        name = verify(self.engine, key)
        if name is not None and self._version is not None:
            with self._lock:
                self._names[digest] = (name, now)
        return name

    def close(self) -> None:
        if self._version is not None:
            self._version.close()
