"""OpenAI's declared prices (`OpenAIProvider.pricing`): prices.toml, with each model's
billable per-example token limit taken from lifecycle.toml."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

from providers.openai.lifecycle import load_lifecycle
from providers.pricing import PriceTable, load_price_table

PRICES_FILE = Path(__file__).with_name("prices.toml")


@cache
def openai_price_table() -> PriceTable:
    """The shipped table (cached: both files ship with the package)."""
    table = load_price_table(PRICES_FILE)
    lifecycle = load_lifecycle()
    models = {}
    for model_id, price in table.models.items():
        info = lifecycle.model(model_id)
        limit = info.context_limit if info is not None else None
        models[model_id] = replace(price, billable_token_limit=limit)
    return replace(table, models=models)
