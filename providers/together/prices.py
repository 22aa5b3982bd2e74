"""Together AI's declared prices (`TogetherProvider.pricing`): prices.toml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from providers.pricing import PriceTable, load_price_table

PRICES_FILE = Path(__file__).with_name("prices.toml")


@cache
def together_price_table() -> PriceTable:
    """The shipped table (cached: the file ships with the package)."""
    return load_price_table(PRICES_FILE)
