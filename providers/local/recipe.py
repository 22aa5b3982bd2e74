"""The local provider's side of `ftm migrate`: its jobs' resolved settings as a neutral
recipe, and a recipe as a local job's options.

Locally every knob is native: the absolute peak learning rate, epochs, the per-device
batch size and the LoRA rank, alpha, dropout and modules. A hosted job that reported only
a multiplier of its service's unpublished base rate leaves the local default rate for
the method (`options.default_learning_rate`), and the mapping says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.local import options
from providers.recipe import (
    LORA_SETTINGS,
    MappingLine,
    RecipeTranslation,
    TrainingRecipe,
    as_float,
    as_int,
    describe_rate,
    dropped_lora_lines,
    shown,
)

NAME = "local"
_LORA_OPTION = {
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "lora_target_modules": "target_modules",
}
"""Recipe field -> local option."""
_ADAPTERS = ("lora", "qlora", "dora")
"""Adapters with LoRA's settings (rank, alpha, dropout, modules)."""
_TUNINGS = (*_ADAPTERS, "ia3", "prefix", "full")
"""What a local supervised job can train (`options.METHODS` less dpo)."""


def recipe_from_local_job(
    method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
) -> TrainingRecipe:
    """The resolved settings a local job reported (``Job.hyperparameters``), else those it
    was launched with (``Job.spec`` options)."""
    reported = dict(hyperparameters or {})
    asked = dict((spec or {}).get("options") or {})
    common = dict((spec or {}).get("hyperparameters") or {})

    def pick(key: str, common_key: str | None = None) -> Any:
        for source, name in ((reported, key), (asked, key), (common, common_key)):
            if name and source.get(name) not in (None, options.AUTO):
                return source[name]
        return None

    local_method = options.normalize_method(reported.get("method") or method)
    tuning = reported.get("tuning") or (
        pick("dpo_tuning") or "lora" if local_method == "dpo" else local_method
    )
    adapter = tuning in _ADAPTERS

    def lora(key: str) -> Any:
        return pick(key) if adapter else None

    return TrainingRecipe(
        method="dpo" if local_method == "dpo" else "supervised",
        tuning=tuning,
        epochs=as_int(pick("epochs", "n_epochs")),
        batch_size=as_int(pick("batch_size", "batch_size")),
        learning_rate=as_float(pick("learning_rate", "learning_rate")),
        lora_r=as_int(lora("r")),
        lora_alpha=as_int(lora("alpha")),
        lora_dropout=as_float(lora("dropout")),
        lora_target_modules=(str(lora("target_modules")) if lora("target_modules") else None),
        seed=as_int(pick("seed") if pick("seed") is not None else (spec or {}).get("seed")),
        source=NAME,
    )


def translate_for_local(recipe: TrainingRecipe) -> RecipeTranslation:
    tuning = recipe.tuning if recipe.tuning in _TUNINGS else "lora"
    if recipe.method == "dpo":
        method = "dpo"
        opts: dict[str, Any] = {} if tuning == "lora" else {"dpo_tuning": tuning}
    else:
        method, opts = tuning, {}
    lines = [
        MappingLine(
            "method",
            f"{recipe.method} ({recipe.tuning or 'provider-chosen'})",
            method,
            "same training" if recipe.tuning == tuning else "local default: a LoRA adapter",
        )
    ]
    for setting, key, value in (
        ("epochs", "epochs", recipe.epochs),
        ("batch size", "batch_size", recipe.batch_size),
    ):
        if value is None:
            default = _default(key)
            lines.append(MappingLine(setting, "-", shown(default), "local default"))
        else:
            opts[key] = value
            lines.append(MappingLine(setting, shown(value), shown(value), "carried"))
    lines.append(_learning_rate(recipe, method, tuning, opts))
    if tuning in _ADAPTERS:
        for setting, attr in LORA_SETTINGS:
            value = getattr(recipe, attr)
            option = _LORA_OPTION[attr]
            if value is None:
                note = "local default; the source did not say"
                lines.append(MappingLine(setting, "-", shown(_default(option)), note))
            else:
                opts[option] = value
                lines.append(MappingLine(setting, shown(value), shown(value), "carried"))
    else:
        lines += dropped_lora_lines(recipe, _NO_LORA_SETTINGS[tuning])
    return RecipeTranslation(method, {}, opts, tuple(lines))


_NO_LORA_SETTINGS = {
    "full": "a full fine-tune has no adapter",
    "ia3": "IA3 trains scaling vectors: no rank or modules to choose",
    "prefix": "prefix tuning trains virtual tokens: no rank or modules to choose",
}


def _learning_rate(
    recipe: TrainingRecipe, method: str, tuning: str, opts: dict[str, Any]
) -> MappingLine:
    if recipe.learning_rate is not None:
        opts["learning_rate"] = recipe.learning_rate
        return MappingLine(
            "learning rate", shown(recipe.learning_rate), shown(recipe.learning_rate), "carried"
        )
    default = options.default_learning_rate(method, tuning)
    if recipe.learning_rate_multiplier is not None:
        note = (
            f"a multiplier of {recipe.multiplier_scale}'s unpublished base rate has no "
            f"absolute value: local default for {tuning}"
        )
    else:
        note = f"local default for {tuning}"
    return MappingLine("learning rate", describe_rate(recipe), shown(default), note)


def _default(option: str) -> Any:
    return next(o.default for o in options.OPTIONS if o.name == option)
