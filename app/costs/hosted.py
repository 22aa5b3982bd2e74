"""Hosted (OpenAI) training cost: billable tokens x price, with `auto` epochs resolved as
the provider resolves them (the service's documented rule)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from app.costs.catalog import Catalog

# OpenAI's default-epoch rule for n_epochs="auto".
AUTO_BASE_EPOCHS = 3
AUTO_MIN_TRAINED_EXAMPLES = 100
AUTO_MAX_TRAINED_EXAMPLES = 25_000
AUTO_MAX_EPOCHS = 25


def auto_epochs(n_examples: int) -> int:
    """Epochs the provider picks for ``n_examples`` when n_epochs is auto: 3, raised so
    that at least 100 examples are seen (at most 25 epochs), lowered so that at most
    25,000 are (at least 1)."""
    if n_examples < 1:
        from app.costs.errors import CostError

        raise CostError("the training split has no examples: nothing to price")
    if n_examples * AUTO_BASE_EPOCHS < AUTO_MIN_TRAINED_EXAMPLES:
        return min(AUTO_MAX_EPOCHS, AUTO_MIN_TRAINED_EXAMPLES // n_examples)
    if n_examples * AUTO_BASE_EPOCHS > AUTO_MAX_TRAINED_EXAMPLES:
        return max(1, AUTO_MAX_TRAINED_EXAMPLES // n_examples)
    return AUTO_BASE_EPOCHS


def _auto_epochs(provider: str, n_examples: int) -> int:
    """The epochs ``provider`` trains for ``auto`` (`Provider.auto_epochs`), else the rule
    above."""
    from app.jobs.providers import provider_class

    cls = provider_class(provider)
    declared = cls.auto_epochs(n_examples) if cls is not None else None
    return auto_epochs(n_examples) if declared is None else declared


def billable_tokens_per_epoch(counts: np.ndarray, token_limit: int) -> int:
    """Sum over examples of min(limit, tokens): longer examples are truncated."""
    return int(np.minimum(counts.astype(np.int64), token_limit).sum())


@dataclass(frozen=True)
class HostedTrainingEstimate:
    model: str
    examples: int
    epochs: int
    epochs_rule: str
    """"auto" (resolved by the provider's rule) or "given"."""
    token_limit: int
    truncated_examples: int
    tokens_per_epoch: int
    billable_tokens: int
    usd_per_1m_tokens: float
    cost_usd: float
    tokenizer: str
    price_source: str
    price_as_of: str

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_hosted_training(
    counts: np.ndarray,
    model: str,
    catalog: Catalog,
    *,
    n_epochs: int | str = "auto",
    tokenizer: str = "tiktoken:o200k_base",
    provider: str | None = None,
    full: bool = False,
) -> HostedTrainingEstimate:
    """Cost of training ``model`` on ``provider`` (None: the first that prices it) on
    examples with token counts ``counts``; ``full``: all the weights, at the provider's
    full fine-tuning rate where it declares one apart from LoRA."""
    prices = catalog.hosted_model(model, provider)
    n = int(counts.size)
    epochs = _auto_epochs(prices.provider, n) if n_epochs == "auto" else int(n_epochs)
    per_epoch = billable_tokens_per_epoch(counts, prices.token_limit)
    billable = per_epoch * epochs
    rate = prices.training_full if full and prices.training_full is not None else prices.training
    return HostedTrainingEstimate(
        model=prices.id,
        examples=n,
        epochs=epochs,
        epochs_rule="auto" if n_epochs == "auto" else "given",
        token_limit=prices.token_limit,
        truncated_examples=int((counts > prices.token_limit).sum()),
        tokens_per_epoch=per_epoch,
        billable_tokens=billable,
        usd_per_1m_tokens=rate,
        cost_usd=billable / 1e6 * rate,
        tokenizer=tokenizer,
        price_source=prices.source.text,
        price_as_of=prices.source.as_of.isoformat(),
    )
