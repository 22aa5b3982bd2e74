"""What one gateway request cost, from the token prices ftm's estimates use.

The price of a holder is the catalog's per-token price (`app.evaluation.pricing.token_price`:
the same figures eval results and promotion gates read), looked up once per
(provider, model, base) and kept: the request path must not re-read the catalog. A holder
the catalog does not price (a local model, a dedicated endpoint billed by the hour) costs
None per request: its cost is the deployment's hours, which deployments account for.
"""

from __future__ import annotations

from functools import lru_cache

from app.evaluation.pricing import TokenPrice, token_price


@lru_cache(maxsize=512)
def _price(provider: str, model: str, base_model: str | None) -> TokenPrice | None:
    try:
        return token_price(provider, model, base_model)
    except Exception:  # a broken prices file must not fail a request; the log says None
        return None


def request_cost_usd(
    provider: str,
    model: str,
    base_model: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> float | None:
    """USD for one request with these token counts; None when unpriced or uncounted."""
    if prompt_tokens is None or completion_tokens is None:
        return None
    price = _price(provider, model, base_model)
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6


def forget_prices() -> None:
    """Drop the cached prices (tests that change the prices file)."""
    _price.cache_clear()
