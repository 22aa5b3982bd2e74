"""Azure OpenAI's declared prices (`AzureOpenAIProvider.pricing`): OpenAI's per-token
figures for the base models Azure fine-tunes (lifecycle.toml lists them), each with the
hourly hosting fee of its deployment (prices.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import date
from functools import cache
from pathlib import Path

from providers.azure.lifecycle import load_lifecycle
from providers.openai.prices import openai_price_table
from providers.pricing import PriceSource, PriceTable, PriceTableError

PRICES_FILE = Path(__file__).with_name("prices.toml")
HOSTING_SOURCE = "azure_hosting"


@cache
def azure_price_table(path: Path = PRICES_FILE) -> PriceTable:
    """The shipped table (cached: every file it reads ships with the package)."""
    try:
        hosting = tomllib.loads(path.read_text(encoding="utf-8"))["hosting"]
        rate = float(hosting["usd_per_hour"])
        source = PriceSource(str(hosting["text"]), date.fromisoformat(str(hosting["as_of"])))
    except (KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise PriceTableError(f"{path}: {type(exc).__name__}: {exc}") from None
    openai = openai_price_table()
    served = {info.id for info in load_lifecycle().models}
    models = {
        model_id: replace(price, hosting_per_hour=rate)
        for model_id, price in openai.models.items()
        if model_id in served
    }
    return replace(
        openai,
        sources={**openai.sources, HOSTING_SOURCE: source},
        models=models,
        aliases={alias: target for alias, target in openai.aliases.items() if target in models},
        note=(
            "OpenAI's per-token prices for the same base models, plus "
            f"${rate:.2f}/hour for each fine-tuned model's deployment"
        ),
    )
