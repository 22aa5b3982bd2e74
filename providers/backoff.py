"""Retry delays shared by providers and the poller, and the one retry loop for idempotent
provider calls."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from providers.errors import ProviderError

T = TypeVar("T")

MAX_INLINE_WAIT_S = 30.0
"""A Retry-After longer than this is not slept out inside a call: the error goes up to the
caller (the poller reschedules the job instead of holding a worker)."""


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


def retry_idempotent(call: Callable[[], T], *, attempts: int, sleep: Callable[[float], None]) -> T:
    """``call()``, sent again after a retryable `ProviderError` up to ``attempts`` times in
    all. Only for calls that are safe to repeat (reads, deletes by id): a create goes
    through `providers.create_once` instead."""
    attempts = max(1, attempts)
    for attempt in range(attempts):
        try:
            return call()
        except ProviderError as err:
            if (
                not err.retryable
                or attempt == attempts - 1
                or (err.retry_after_s or 0) > MAX_INLINE_WAIT_S
            ):
                raise
            sleep(backoff_delay(attempt, err.retry_after_s))
    raise AssertionError("unreachable")
