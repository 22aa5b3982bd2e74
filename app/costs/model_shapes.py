"""A model's shape, found by name: a local directory (its config.json) or the table of
common hub models in ``known_models.toml``, never guessed.

The shape itself and its parameter counts are `providers.local.model_shape.ModelShape`,
the class the local provider's memory refusal reads too (one count of parameters).
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from app.costs.errors import UnknownModel, known_list
from providers.local.model_shape import (
    ALL_LINEAR,
    ATTENTION_MODULES,
    MLP_MODULES,
    ModelShape,
    ShapeError,
    load_local_shape,
    shape_from_config,
)

__all__ = [
    "ALL_LINEAR",
    "ATTENTION_MODULES",
    "MLP_MODULES",
    "ModelShape",
    "known_model_names",
    "model_shape",
    "resolve_targets",
]

KNOWN_MODELS_FILE = Path(__file__).with_name("known_models.toml")


def resolve_targets(targets: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Normalize LoRA target modules: 'all-linear' (default), 'attention', or names.

    Raises `UnknownModel` for a module name the Llama layout does not have.
    """
    if targets is None or targets in ("all-linear", "all"):
        return ALL_LINEAR
    if targets == "attention":
        return ATTENTION_MODULES
    if isinstance(targets, str):
        targets = tuple(t.strip() for t in targets.split(",") if t.strip())
    unknown = [t for t in targets if t not in ALL_LINEAR]
    if unknown:
        raise UnknownModel(
            f"unknown LoRA target module {unknown[0]!r}; known: "
            f"{known_list(set(ALL_LINEAR))} or 'all-linear'"
        )
    return tuple(targets)


def _from_config(config: dict, name: str, source: str) -> ModelShape:
    try:
        return shape_from_config(config, name, source)
    except ShapeError as e:
        raise UnknownModel(str(e)) from None


@cache
def _known_models() -> dict[str, dict]:
    with KNOWN_MODELS_FILE.open("rb") as f:
        table = tomllib.load(f)["models"]
    index: dict[str, dict] = {}
    for name, cfg in table.items():
        entry = dict(cfg) | {"_name": name}
        for alias in [name, *cfg.get("aliases", [])]:
            index[alias.lower()] = entry
    return index


def known_model_names() -> list[str]:
    return sorted({e["_name"] for e in _known_models().values()})


def model_shape(model: str | Path) -> ModelShape:
    """The shape of ``model``: a local directory (or config.json) or a known hub id.

    Raises `UnknownModel` listing the known ids when neither applies.
    """
    try:
        local = load_local_shape(model)
    except ShapeError as e:
        raise UnknownModel(str(e)) from None
    if local is not None:
        return local
    entry = _known_models().get(str(model).lower())
    if entry is None:
        entry = next(
            (e for k, e in _known_models().items() if k.split("/")[-1] == str(model).lower()), None
        )
    if entry is None:
        raise UnknownModel(
            f"unknown model {str(model)!r}: not a local directory with a config.json, nor a "
            f"known hub id; known: {known_list(known_model_names())}"
        )
    return _from_config(entry, entry["_name"], f"{KNOWN_MODELS_FILE.name}: {entry['_name']}")
