"""Per-request inference prices for eval results, read from the shipped price catalog
(app/costs/catalog.toml, overridable with settings ``prices_file``) — never from code.

Hosted OpenAI models are priced per token: base prices for a base model, fine-tuned
prices for an ``ft:`` model (and its checkpoints), keyed by the base snapshot in its name.
A model the catalog does not price (a local adapter, an unknown id) costs ``None``: the
comparison says "no price" rather than pretend it is free.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG_PATH = Path(__file__).resolve().parent.parent / "costs" / "catalog.toml"


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    model: str
    fine_tuned: bool
    source: str


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@cache
def _catalog(prices_file: str | None) -> dict:
    data = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    if prices_file:
        data = _merge(data, tomllib.loads(Path(prices_file).read_text(encoding="utf-8")))
    return data


def catalog() -> dict:
    from app.settings import get_settings

    prices_file = get_settings().prices_file
    return _catalog(str(prices_file) if prices_file else None)


def base_of(model: str) -> str:
    """The base snapshot of an OpenAI model id: ``ft:gpt-4o-mini-2024-07-18:org:x:id`` ->
    ``gpt-4o-mini-2024-07-18``; a base id is its own base."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model


def token_price(provider: str, model: str) -> TokenPrice | None:
    """The per-token price of ``model`` on ``provider``, or None when not in the catalog."""
    if provider != "openai":
        return None
    data = catalog().get("openai", {})
    base = base_of(model)
    base = data.get("aliases", {}).get(base, base)
    entry = data.get("models", {}).get(base)
    if entry is None:
        return None
    fine_tuned = model.startswith("ft:")
    prefix = "ft_" if fine_tuned else "base_"
    if f"{prefix}input" not in entry:
        return None
    source = catalog().get("sources", {}).get(entry.get("source", ""), {})
    return TokenPrice(
        input=float(entry[f"{prefix}input"]),
        output=float(entry[f"{prefix}output"]),
        model=base,
        fine_tuned=fine_tuned,
        source=f"{source.get('text', 'price catalog')} (as of {source.get('as_of', '?')})",
    )


def request_cost(
    provider: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    *,
    base_model: str | None = None,
) -> float | None:
    """USD for one request with these token counts; None when unpriced or uncounted."""
    price = token_price(provider, model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6
