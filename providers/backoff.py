"""Retry delays shared by providers and the poller."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, retry_after_s: float | None = None, *, base: float = 0.25, cap: float = 8.0
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): exponential with full
    jitter (so many clients do not retry in step), but never less than the server's
    ``Retry-After``."""
    delay = random.uniform(0, min(cap, base * (2**attempt)))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
