"""The emulator's training rate table: what a Together fine-tune costs, in nanodollars.

Together bills training per token processed (``n_epochs`` x training tokens +
``n_evals`` x validation tokens) at a rate set by the base model's size bracket, the
method (SFT or DPO) and the type (LoRA or full). Its published rates live on its pricing
page, not in the API spec; the figures below are the emulator's own, anchored on the one
third-party figure known ($0.48 per million tokens for LoRA SFT up to 16B, unverified).
They make ``total_price`` and ``estimate-price`` consistent and testable; they are not a
quote. Jobs report ``total_price`` as an integer number of nanodollars, as Together does.
"""

from __future__ import annotations

NANODOLLARS_PER_DOLLAR = 1_000_000_000

# (upper bound of the bracket in billions of parameters, LoRA $/1M tokens, full $/1M tokens)
SFT_RATES_PER_MILLION: tuple[tuple[float, float, float], ...] = (
    (16.0, 0.48, 0.54),
    (69.0, 1.50, 1.65),
    (100.0, 2.90, 3.20),
    (float("inf"), 6.00, 6.60),
)
DPO_FACTOR = 2.5
"""DPO trains on a preferred and a rejected sequence with a reference model: dearer."""


def dollars_per_million_tokens(param_count: int, *, method: str, lora: bool) -> float:
    """The rate for a model of ``param_count`` parameters (method ``sft`` or ``dpo``)."""
    billions = param_count / 1e9
    for upper, lora_rate, full_rate in SFT_RATES_PER_MILLION:
        if billions <= upper:
            rate = lora_rate if lora else full_rate
            break
    return rate * DPO_FACTOR if method == "dpo" else rate


def price_nanodollars(tokens: int, param_count: int, *, method: str, lora: bool) -> int:
    """What training ``tokens`` tokens costs, in whole nanodollars."""
    per_million = dollars_per_million_tokens(param_count, method=method, lora=lora)
    return round(tokens * per_million * NANODOLLARS_PER_DOLLAR / 1_000_000)
