"""OpenAI's side of `ftm migrate`: its jobs' settings as a neutral recipe, and a recipe
as an OpenAI job.

OpenAI's only learning-rate knob is a multiplier of a base rate it does not publish, so a
multiplier carries only between services on that same scale (OpenAI and Azure OpenAI),
and an absolute rate (a local or Together job's) has no multiplier equivalent: it is left
to OpenAI (``auto``), and the mapping says so. OpenAI chooses its own adapter, so LoRA
settings do not carry either.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from providers.recipe import (
    MappingLine,
    RecipeTranslation,
    TrainingRecipe,
    carry_epochs_and_batch,
    describe_rate,
    dropped_lora_lines,
    shown,
)

MULTIPLIER_SCALE = "openai"
"""Whose base rate OpenAI's ``learning_rate_multiplier`` scales: OpenAI's own, which Azure
OpenAI (the same models and API) shares."""

METHODS = ("supervised", "dpo")


def recipe_for_openai(recipe: TrainingRecipe) -> TrainingRecipe:
    """A recipe read by the neutral default, its multiplier put on OpenAI's scale."""
    if recipe.learning_rate_multiplier is None:
        return recipe
    return replace(recipe, multiplier_scale=MULTIPLIER_SCALE)


def translate_for_openai(recipe: TrainingRecipe, display_name: str) -> RecipeTranslation:
    method = recipe.method if recipe.method in METHODS else "supervised"
    hp: dict[str, Any]
    hp, lines = carry_epochs_and_batch(recipe)
    lines.insert(
        0,
        MappingLine(
            "method",
            f"{recipe.method} ({recipe.tuning or 'provider-chosen'})",
            method,
            f"{display_name} chooses what it trains",
        ),
    )
    source_rate = describe_rate(recipe)
    if recipe.learning_rate_multiplier is not None and recipe.multiplier_scale == MULTIPLIER_SCALE:
        hp["learning_rate_multiplier"] = recipe.learning_rate_multiplier
        lines.append(
            MappingLine(
                "learning rate",
                source_rate,
                f"x{shown(recipe.learning_rate_multiplier)}",
                "multiplier on the same base rate",
            )
        )
    elif source_rate != "-":
        lines.append(
            MappingLine(
                "learning rate",
                source_rate,
                "auto",
                f"{display_name} takes only a multiplier of its unpublished base rate",
            )
        )
    else:
        lines.append(MappingLine("learning rate", "-", "auto", "not known for the source job"))
    if recipe.tuning == "full" or recipe.tuning is None:
        dropped = []
    else:
        dropped = dropped_lora_lines(recipe, f"{display_name} chooses its own adapter")
    return RecipeTranslation(method, hp, {}, tuple(lines + dropped))
