"""Label balance: when every assistant reply is a short class label, count each label."""

from __future__ import annotations

from collections import Counter

from app.datasets.formats import label_of

MAX_CLASSES = 50


def is_categorical(counts: Counter, n_examples: int) -> bool:
    """A few distinct short replies, each used more than once on average, are labels."""
    distinct = len(counts)
    return (
        sum(counts.values()) == n_examples
        and 2 <= distinct <= MAX_CLASSES
        and distinct <= max(2, n_examples // 2)
    )


def categorical_labels(examples: list[dict]) -> list[str] | None:
    """The label of each normalized example, or None when replies are not class labels."""
    labels = [label_of(e) for e in examples]
    if any(label is None for label in labels):
        return None
    return labels if is_categorical(Counter(labels), len(examples)) else None


def imbalance(counts: Counter) -> float:
    """How many times the most common label outnumbers the least common."""
    return max(counts.values()) / min(counts.values()) if counts else 1.0
