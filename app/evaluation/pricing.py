"""Per-request inference prices for eval results, from the price catalog of app.costs
(app/costs/catalog.toml, overridable with settings ``prices_file``) — never from code.

Hosted OpenAI models are priced per token: base prices for a base model, fine-tuned
prices for an ``ft:`` model (and its checkpoints), keyed by the base snapshot in its name.
A model the catalog does not price (a local adapter, an unknown id) costs ``None``: the
comparison says "no price" rather than pretend it is free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    model: str
    fine_tuned: bool
    source: str


def base_of(model: str) -> str:
    """The base snapshot of an OpenAI model id: ``ft:gpt-4o-mini-2024-07-18:org:x:id`` ->
    ``gpt-4o-mini-2024-07-18``; a base id is its own base."""
    return model.split(":")[1] if model.startswith("ft:") else model


def canonical_model(model: str | None) -> str | None:
    """A short OpenAI name resolved to its snapshot (gpt-4o-mini -> gpt-4o-mini-2024-07-18),
    so a base evaluated by its short name matches a fine-tune's base."""
    if model is None:
        return None
    from app.costs.catalog import load_catalog

    return load_catalog().aliases.get(model, model)


def token_price(provider: str, model: str) -> TokenPrice | None:
    """The per-token price of ``model`` on ``provider``, or None when not in the catalog."""
    if provider != "openai":
        return None
    from app.costs.catalog import load_catalog
    from app.costs.errors import UnknownModel

    try:
        entry = load_catalog().hosted_model(model)
    except UnknownModel:
        return None
    fine_tuned = model.startswith("ft:")
    return TokenPrice(
        input=entry.ft_input if fine_tuned else entry.base_input,
        output=entry.ft_output if fine_tuned else entry.base_output,
        model=entry.id,
        fine_tuned=fine_tuned,
        source=f"{entry.source.text} (as of {entry.source.as_of.isoformat()})",
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
