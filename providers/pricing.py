"""Prices as a provider declares them (`Provider.pricing`): a provider-neutral table that
ftm's cost estimates read, with no network.

Two bases exist. ``tokens``: the provider bills per token (training per 1M billable
tokens, inference per 1M input/output tokens), optionally with an hourly fee for keeping a
fine-tuned model deployed. ``hardware``: the provider runs on hardware ftm prices by the
hour (its GPU catalog): no per-model figures, the estimate comes from compute time.

Every figure names a source, and every source has a date, so an estimate can say where a
price came from and how old it is. A provider keeps its table in a TOML file of this
shape, read by `load_price_table`::

    basis = "tokens"
    [sources.list_prices]
    text = "the provider's public price list"
    as_of = "2026-11-01"
    [models."some-model"]
    training = 3.00          # USD per 1M billable training tokens
    training_full = 3.50     # optional: full fine-tuning, where priced apart from LoRA
    ft_input = 0.30          # the fine-tuned model, USD per 1M tokens
    ft_output = 1.20
    base_input = 0.15        # the base model
    base_output = 0.60
    hosting_per_hour = 0.0   # optional: a deployed fine-tuned model's hourly fee
    source = "list_prices"
    [aliases]
    "short-name" = "some-model"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

PriceBasis = Literal["tokens", "hardware"]
BASES: tuple[PriceBasis, ...] = ("tokens", "hardware")


class PriceTableError(ValueError):
    """A declared price table is malformed (says which file and which field)."""


@dataclass(frozen=True)
class PriceSource:
    text: str
    as_of: date


@dataclass(frozen=True)
class ModelPrice:
    """What one base model costs, USD. ``None``: the provider does not offer it."""

    training: float
    """Per 1M billable training tokens."""
    ft_input: float
    """Per 1M input tokens sent to the fine-tuned model."""
    ft_output: float
    base_input: float
    """Per 1M input tokens sent to the base model (the few-shot baseline)."""
    base_output: float
    source: str
    """Key of this table's `PriceTable.sources` the figures come from."""
    ft_cached_input: float | None = None
    base_cached_input: float | None = None
    hosting_per_hour: float | None = None
    """An hourly fee for keeping the fine-tuned model deployed; None: no such fee."""
    billable_token_limit: int | None = None
    """Tokens of one example that are billed (longer ones are truncated); None: ftm's
    default."""
    training_full: float | None = None
    """Per 1M training tokens for full fine-tuning, where the provider prices it apart
    from LoRA (``training`` is then its LoRA rate, the one estimates use); None: one rate
    for both."""


@dataclass(frozen=True)
class PriceTable:
    """One provider's prices."""

    basis: PriceBasis
    sources: Mapping[str, PriceSource]
    models: Mapping[str, ModelPrice] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Short name -> the model id its prices are under."""
    cache_min_prefix_tokens: int | None = None
    """Prompt caching applies to prefixes of at least this many tokens; None: no caching."""
    note: str = ""
    """How this provider is priced, in a sentence (shown by ``ftm prices``)."""

    @property
    def as_of(self) -> date:
        """The date of the oldest source: the table is as old as its oldest figure."""
        return min(source.as_of for source in self.sources.values())

    def problems(self) -> list[str]:
        """What is incoherent in the table (empty when sound): every figure needs a known
        source, no price is negative, aliases point at priced models."""
        found = []
        if self.basis not in BASES:
            found.append(f"basis {self.basis!r} is not one of {', '.join(BASES)}")
        if not self.sources:
            found.append("no source is declared")
        if self.basis == "tokens" and not self.models:
            found.append("a tokens-priced table prices no model")
        for model_id, price in self.models.items():
            if price.source not in self.sources:
                found.append(f"{model_id}: unknown source {price.source!r}")
            for name in (
                "training",
                "training_full",
                "ft_input",
                "ft_output",
                "base_input",
                "base_output",
                "ft_cached_input",
                "base_cached_input",
                "hosting_per_hour",
            ):
                value = getattr(price, name)
                if value is not None and value < 0:
                    found.append(f"{model_id}: {name} is negative ({value})")
        for alias, target in self.aliases.items():
            if target not in self.models:
                found.append(f"alias {alias!r} points at unpriced model {target!r}")
        return found


def _opt(value: Any, cast: type) -> Any:
    return None if value is None else cast(value)


def price_table_from_dict(raw: Mapping[str, Any], where: str) -> PriceTable:
    """A `PriceTable` from the TOML shape above; ``where`` names the file in errors."""
    try:
        sources = {
            key: PriceSource(str(value["text"]), date.fromisoformat(str(value["as_of"])))
            for key, value in raw.get("sources", {}).items()
        }
        models = {
            model_id: ModelPrice(
                training=float(m["training"]),
                ft_input=float(m["ft_input"]),
                ft_output=float(m["ft_output"]),
                base_input=float(m["base_input"]),
                base_output=float(m["base_output"]),
                source=str(m["source"]),
                ft_cached_input=_opt(m.get("ft_cached_input"), float),
                base_cached_input=_opt(m.get("base_cached_input"), float),
                hosting_per_hour=_opt(m.get("hosting_per_hour"), float),
                billable_token_limit=_opt(m.get("billable_token_limit"), int),
                training_full=_opt(m.get("training_full"), float),
            )
            for model_id, m in raw.get("models", {}).items()
        }
        table = PriceTable(
            basis=raw.get("basis", "tokens"),
            sources=sources,
            models=models,
            aliases=dict(raw.get("aliases", {})),
            cache_min_prefix_tokens=_opt(raw.get("cache_min_prefix_tokens"), int),
            note=str(raw.get("note", "")),
        )
    except KeyError as exc:
        raise PriceTableError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise PriceTableError(f"{where}: {exc}") from None
    problems = table.problems()
    if problems:
        raise PriceTableError(f"{where}: " + "; ".join(problems))
    return table


def load_price_table(path: Path) -> PriceTable:
    """Read a provider's price file (the TOML shape above)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PriceTableError(f"{path}: not valid TOML: {exc}") from None
    return price_table_from_dict(raw, str(path))
