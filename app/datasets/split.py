"""A deterministic held-out split: the same examples, fraction and seed always give the
same validation indices; stratified by label when the replies are class labels."""

from __future__ import annotations

import numpy as np


def split_indices(
    n: int, val_fraction: float, seed: int, strata: np.ndarray | None = None
) -> np.ndarray:
    """Sorted 0-based indices of the validation examples among `n`.

    With `strata` (one label id per example), each label contributes its own share, so the
    validation set keeps the label proportions. At least one example is held out when
    `val_fraction` > 0 and there are two or more examples.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n < 2 or val_fraction == 0.0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if strata is None:
        k = min(n - 1, max(1, round(n * val_fraction)))
        return np.sort(rng.permutation(n)[:k])
    strata = np.asarray(strata)
    chosen = []
    for value in np.unique(strata):  # sorted: the order does not depend on the file order
        members = np.flatnonzero(strata == value)
        k = round(members.size * val_fraction)
        if k:
            chosen.append(members[rng.permutation(members.size)[:k]])
    picked = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    if picked.size == 0:
        picked = np.array([rng.integers(n)])
    if picked.size >= n:
        picked = picked[: n - 1]
    return picked.astype(np.int64)
