"""Break-even against the few-shot baseline, and cumulative cost against requests.

For a fine-tuned option with one-time cost F and per-request cost c against the baseline's
c_base: R* = F / (c_base - c), and no break-even when c >= c_base. Self-hosting's
per-request cost is its always-on monthly cost spread over the expected traffic, so every
option's cumulative cost is a line F + c x R and the crossing points of the lines are the
break-evens.
"""

from __future__ import annotations

import numpy as np


def break_even_requests(
    one_time_usd: float,
    per_request_usd: float,
    baseline_per_request_usd: float,
    baseline_one_time_usd: float = 0.0,
) -> float | None:
    """Requests after which the option has cost less than the baseline; None if never."""
    saving = baseline_per_request_usd - per_request_usd
    if saving <= 0:
        return None  # never cheaper per request: it never pays back
    return max(0.0, (one_time_usd - baseline_one_time_usd) / saving)


def cumulative_cost(
    one_time_usd: float, per_request_usd: float, requests: np.ndarray
) -> np.ndarray:
    return one_time_usd + per_request_usd * requests
