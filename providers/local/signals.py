"""Signal masks across the start of a worker process.

A worker installs its SIGTERM handler only once Python and its modules have loaded; a
signal arriving before that would kill it with no final status. Its starter therefore
forks it with the signals blocked (a blocked signal stays pending, and the mask is
inherited through fork and exec), and the worker unblocks them right after installing
its handler, which then receives any signal that came early.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def signals_blocked(signals: Iterable[signal.Signals]) -> Iterator[None]:
    """Block ``signals`` in the calling thread for the block's duration (processes it
    starts meanwhile inherit the mask); the previous mask is restored after."""
    signals = set(signals)
    if not signals:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_stop_signals() -> None:
    """In the worker, once its handler is installed: let the stop signals through."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
