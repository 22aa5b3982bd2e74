"""The emulator's clock: wall time by default, freezable and advanceable for tests.

Every timestamp the sandbox reports and every lifecycle transition is computed from this
clock, so a test that freezes it and calls :meth:`SandboxClock.advance` sees the same
jobs, events and metrics on every run.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime


class SandboxClock:
    """Seconds since the epoch, as the emulated service sees them.

    ``start`` pins the clock's reading at construction (a ``datetime`` or Unix seconds;
    ``None`` means the real time). A running clock then moves with the host's monotonic
    clock; a frozen one moves only through :meth:`advance`.
    """

    def __init__(self, start: datetime | float | None = None, *, frozen: bool = False) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            start = start.timestamp()
        self._origin = time.time() if start is None else float(start)
        self._anchor = time.monotonic()
        self._offset = 0.0
        self._frozen_at: float | None = self._anchor if frozen else None
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> float:
        """The emulated time, in Unix seconds."""
        with self._lock:
            reference = self._frozen_at if self._frozen_at is not None else time.monotonic()
            return self._origin + (reference - self._anchor) + self._offset

    def today(self) -> date:
        """The emulated date (UTC)."""
        return datetime.fromtimestamp(self.now(), UTC).date()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def freeze(self) -> None:
        """Stop the clock where it is; only :meth:`advance` moves it afterwards."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = time.monotonic()

    def unfreeze(self) -> None:
        """Let the clock run with the host's clock again, from where it stands."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset -= time.monotonic() - self._frozen_at
                self._frozen_at = None
