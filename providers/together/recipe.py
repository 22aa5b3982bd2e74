"""Together's side of `ftm migrate`: its jobs' settings as a neutral recipe, and a recipe
as a Together job.

Together takes an absolute learning rate and native LoRA knobs (rank, alpha, dropout,
target modules), and trains LoRA or full weights (option ``lora``). ftm's
``learning_rate_multiplier`` means, on Together, a multiple of Together's documented
default rate (`limits.DEFAULT_LEARNING_RATE`, 1e-5): so a Together job's rate is always
known absolutely, and a multiplier from any service maps through that declared base rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.recipe import (
    LORA_SETTINGS,
    MappingLine,
    RecipeTranslation,
    TrainingRecipe,
    as_float,
    as_int,
    carry_epochs_and_batch,
    describe_rate,
    dropped_lora_lines,
    shown,
)
from providers.together.limits import DEFAULT_LEARNING_RATE

NAME = "together"
METHODS = ("supervised", "dpo")
LORA_OPTIONS = {
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "lora_target_modules": "lora_trainable_modules",
}
"""Recipe field -> Together option (`TogetherProvider.options`)."""


def recipe_from_together_job(
    method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
) -> TrainingRecipe:
    """What Together reported for the job (`convert.hyperparameters_of`), else what ftm
    launched it with (``Job.spec``)."""
    reported = dict(hyperparameters or {})
    asked_hp = dict((spec or {}).get("hyperparameters") or {})
    asked = dict((spec or {}).get("options") or {})

    def pick(*pairs: tuple[Mapping[str, Any], str]) -> Any:
        for source, key in pairs:
            if source.get(key) not in (None, "auto", "max"):
                return source[key]
        return None

    training_type = reported.get("training_type")
    if training_type is not None:
        lora = str(training_type).lower() == "lora"
    else:
        lora = asked.get("lora", True) not in (False, "false")

    def lora_knob(key: str) -> Any:
        return pick((reported, key), (asked, key)) if lora else None

    modules = lora_knob("lora_trainable_modules")
    return TrainingRecipe(
        method="dpo" if (reported.get("method") or method) == "dpo" else "supervised",
        tuning="lora" if lora else "full",
        epochs=as_int(pick((reported, "n_epochs"), (asked_hp, "n_epochs"))),
        batch_size=as_int(pick((reported, "batch_size"), (asked_hp, "batch_size"))),
        learning_rate=_absolute_rate(reported, asked_hp),
        lora_r=as_int(lora_knob("lora_r")),
        lora_alpha=as_int(lora_knob("lora_alpha")),
        lora_dropout=as_float(lora_knob("lora_dropout")),
        lora_target_modules=(
            ",".join(modules) if isinstance(modules, list) else str(modules) if modules else None
        ),
        seed=as_int((spec or {}).get("seed")),
        source=NAME,
    )


def _absolute_rate(reported: Mapping[str, Any], asked: Mapping[str, Any]) -> float:
    """The rate the job trained with: as Together reported it, else as ftm sent it (an
    absolute rate, a multiplier of the default, or the default itself)."""
    for value in (reported.get("learning_rate"), asked.get("learning_rate")):
        rate = as_float(value)
        if rate is not None:
            return rate
    multiplier = as_float(asked.get("learning_rate_multiplier"))
    return DEFAULT_LEARNING_RATE * (multiplier if multiplier is not None else 1.0)


def translate_for_together(recipe: TrainingRecipe, display_name: str) -> RecipeTranslation:
    method = recipe.method if recipe.method in METHODS else "supervised"
    full = recipe.tuning == "full"
    options: dict[str, Any] = {"lora": not full}
    tuning_note = {
        "full": "full fine-tuning (option lora=false)",
        "lora": "same training: a LoRA adapter",
        "qlora": "Together trains LoRA on unquantized weights (no QLoRA)",
    }.get(recipe.tuning or "", "Together's default: a LoRA adapter")
    lines = [
        MappingLine(
            "method",
            f"{recipe.method} ({recipe.tuning or 'provider-chosen'})",
            f"{method} ({'full' if full else 'lora'})",
            tuning_note,
        )
    ]
    hp: dict[str, Any]
    hp, carried = carry_epochs_and_batch(recipe)
    lines += carried
    lines.append(_learning_rate(recipe, hp))
    if full:
        lines += dropped_lora_lines(recipe, "a full fine-tune has no adapter")
    else:
        for setting, attr in LORA_SETTINGS:
            value = getattr(recipe, attr)
            if value is None:
                lines.append(MappingLine(setting, "-", "default", f"{display_name}'s default"))
            else:
                options[LORA_OPTIONS[attr]] = value
                lines.append(MappingLine(setting, shown(value), shown(value), "carried"))
    return RecipeTranslation(method, hp, options, tuple(lines))


def _learning_rate(recipe: TrainingRecipe, hp: dict[str, Any]) -> MappingLine:
    """Together takes an absolute rate: carried as it is, or a multiplier through the
    declared base rate (1e-5)."""
    if recipe.learning_rate is not None:
        hp["learning_rate"] = recipe.learning_rate
        carried = shown(recipe.learning_rate)
        return MappingLine("learning rate", carried, carried, "carried (an absolute rate)")
    if recipe.learning_rate_multiplier is not None:
        rate = DEFAULT_LEARNING_RATE * recipe.learning_rate_multiplier
        hp["learning_rate"] = rate
        return MappingLine(
            "learning rate",
            describe_rate(recipe),
            shown(rate),
            f"x{shown(recipe.learning_rate_multiplier)} of Together's base rate "
            f"{DEFAULT_LEARNING_RATE:g}",
        )
    return MappingLine(
        "learning rate",
        "-",
        shown(DEFAULT_LEARNING_RATE),
        "Together's default; not known for the source job",
    )
