"""A training recipe in provider-neutral terms, and its translation into one provider's
knobs — what `ftm migrate` carries from the job that made a model to a job elsewhere.

A provider reads its own job's settings into a `TrainingRecipe`
(`Provider.recipe_from_job`) and turns a recipe into the hyperparameters and options of a
new job on itself (`Provider.translate_recipe`), saying for each setting what it became
and why (`MappingLine`), so the migration can print the mapping before it spends anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class TrainingRecipe:
    """What a fine-tune was trained with, independent of the provider that ran it.
    None: not known (the provider chose it, or does not say)."""

    method: str = "supervised"
    """Neutral objective: ``supervised`` or ``dpo``."""
    tuning: str | None = None
    """What was trained: ``lora``, ``full``, ``qlora``; None when the provider does not
    say (a hosted service's own choice)."""
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    """The absolute peak learning rate, where known (a local job, or a provider that
    declares its base rate)."""
    learning_rate_multiplier: float | None = None
    """A multiplier of ``multiplier_scale``'s own base rate (OpenAI's knob)."""
    multiplier_scale: str | None = None
    """Whose base rate the multiplier scales (a provider name): it carries over only to a
    provider on the same scale."""
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_target_modules: str | None = None
    seed: int | None = None
    source: str = ""
    """The provider whose job this recipe was read from (for the printed mapping)."""

    def with_epochs(self, epochs: int | None) -> TrainingRecipe:
        """This recipe with ``epochs`` (an explicit override) when given."""
        return self if epochs is None else replace(self, epochs=epochs)


@dataclass(frozen=True)
class MappingLine:
    """One setting of the mapping: what it was, what it becomes, and why."""

    setting: str
    """Neutral name: epochs, batch size, learning rate, LoRA rank..."""
    source: str
    """Its value on the old job, as text (``-`` when unknown)."""
    target: str
    """Its value on the new job, as text (``auto`` when left to the provider)."""
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "setting": self.setting,
            "from": self.source,
            "to": self.target,
            "note": self.note,
        }


@dataclass(frozen=True)
class RecipeTranslation:
    """A recipe in one provider's terms: what `launch_job` takes, and the mapping."""

    method: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    """`providers.types.Hyperparameters` fields."""
    options: dict[str, Any] = field(default_factory=dict)
    """Provider options (``JobSpec.options``)."""
    lines: tuple[MappingLine, ...] = ()


def shown(value: Any) -> str:
    """A setting's value as the mapping prints it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def as_int(value: Any) -> int | None:
    """An integer setting as a provider reported it; None for ``auto``, missing or odd."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    """A numeric setting as a provider reported it; None for ``auto``, missing or odd."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def describe_rate(recipe: TrainingRecipe) -> str:
    """The source's learning rate as the mapping prints it: absolute, or a multiplier of
    whose base rate."""
    if recipe.learning_rate is not None:
        return shown(recipe.learning_rate)
    if recipe.learning_rate_multiplier is not None:
        return f"x{shown(recipe.learning_rate_multiplier)} ({recipe.multiplier_scale} scale)"
    return "-"


def carry_epochs_and_batch(recipe: TrainingRecipe) -> tuple[dict[str, Any], list[MappingLine]]:
    """Epochs and batch size as `Hyperparameters` fields (every provider has both), with
    their mapping lines; left to the provider (``auto``) when the source did not say."""
    hp: dict[str, Any] = {}
    lines = []
    for setting, key, value in (
        ("epochs", "n_epochs", recipe.epochs),
        ("batch size", "batch_size", recipe.batch_size),
    ):
        if value is None:
            lines.append(MappingLine(setting, "-", "auto", "not known for the source job"))
        else:
            hp[key] = value
            lines.append(MappingLine(setting, shown(value), shown(value), "carried"))
    return hp, lines


LORA_SETTINGS = (
    ("LoRA rank", "lora_r"),
    ("LoRA alpha", "lora_alpha"),
    ("LoRA dropout", "lora_dropout"),
    ("LoRA modules", "lora_target_modules"),
)
"""The recipe's LoRA fields, with the names the mapping prints."""


def dropped_lora_lines(recipe: TrainingRecipe, why: str) -> list[MappingLine]:
    """A line per LoRA setting the source had and the target cannot take."""
    return [
        MappingLine(setting, shown(getattr(recipe, attr)), "-", why)
        for setting, attr in LORA_SETTINGS
        if getattr(recipe, attr) is not None
    ]
