"""Hosted training cost: the auto-epoch rule at its boundaries, the per-example limit."""

from __future__ import annotations

import numpy as np
import pytest

from app.costs.catalog import load_catalog
from app.costs.hosted import auto_epochs, billable_tokens_per_epoch, estimate_hosted_training


@pytest.mark.parametrize(
    ("n", "epochs"),
    [
        (1, 25),  # 100 // 1 = 100, capped at 25
        (4, 25),  # 4 x 3 = 12 < 100: min(25, 100 // 4 = 25)
        (5, 20),  # min(25, 20)
        (10, 10),
        (33, 3),  # 33 x 3 = 99 < 100: min(25, 100 // 33) = 3
        (34, 3),  # 34 x 3 = 102: the plain 3
        (8333, 3),  # 8333 x 3 = 24,999 <= 25,000
        (8334, 2),  # 8334 x 3 = 25,002 > 25,000: 25,000 // 8334 = 2
        (12_500, 2),
        (12_501, 1),
        (100_000, 1),  # never below 1
    ],
)
def test_auto_epochs_boundaries(n, epochs):
    assert auto_epochs(n) == epochs


def test_auto_epochs_boundary_at_exactly_100_trained_examples():
    # n x 3 = 99 raises epochs (to 100 // n); n x 3 = 102 keeps 3. n = 25 -> 75 < 100 -> 4.
    assert auto_epochs(25) == 4
    assert auto_epochs(20) == 5
    # Below 34 examples the rule raises epochs to 100 // n (at most 25): about 100 seen.
    for n in range(1, 34):
        assert auto_epochs(n) == min(25, 100 // n), n


def test_billable_tokens_apply_the_per_example_limit():
    counts = np.array([100, 70_000, 65_536, 10], dtype=np.uint32)
    assert billable_tokens_per_epoch(counts, 65_536) == 100 + 65_536 + 65_536 + 10


def test_hosted_estimate_hand_computed():
    c = load_catalog(use_settings=False)
    counts = np.array([1000] * 40 + [20_000], dtype=np.uint32)  # 41 examples
    e = estimate_hosted_training(counts, "gpt-3.5-turbo", c)  # limit 16,385
    assert e.epochs == 3 and e.epochs_rule == "auto"
    assert e.tokens_per_epoch == 40 * 1000 + 16_385
    assert e.truncated_examples == 1
    assert e.billable_tokens == 3 * 56_385
    assert e.cost_usd == pytest.approx(3 * 56_385 / 1e6 * 8.00)
    given = estimate_hosted_training(counts, "gpt-4o-mini-2024-07-18", c, n_epochs=2)
    assert given.epochs == 2 and given.billable_tokens == 2 * 60_000
    assert given.cost_usd == pytest.approx(0.12 * 3.00)
    assert given.to_dict()["price_as_of"] == "2025-11-01"
