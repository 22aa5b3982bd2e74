"""The training recipe a migration carries: the source job's settings read by the
provider that ran it, translated by the provider that will run the new job, with the
user's explicit overrides on top — and the mapping as printable lines.

The core never knows what a provider's knobs are: both halves are the providers' own
declarations (`Provider.recipe_from_job`, `Provider.translate_recipe`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace
from typing import Any

from app.jobs.providers import provider_class, registry
from db.models import Job
from providers.base import Provider
from providers.recipe import MappingLine, RecipeTranslation, TrainingRecipe, shown

OVERRIDE_NOTE = "set with --option"
BATCH_NOTE = "set with --batch-size"


class RecipeError(LookupError):
    """A provider of the migration is not installed."""


@dataclass(frozen=True)
class CarriedRecipe:
    source: TrainingRecipe
    """The source job's recipe, read by its own provider."""
    translation: RecipeTranslation
    """What the new job launches with, overrides included; ``lines`` is the mapping."""


def _installed(name: str) -> type[Provider]:
    cls = provider_class(name)
    if cls is not None:
        return cls
    try:
        return registry().get(name)  # looked up afresh; its error names the known ones
    except KeyError as exc:
        raise RecipeError(f"{exc.args[0]}; migrate to one of those") from None


def carry_recipe(
    source: Job,
    to_provider: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    method: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> CarriedRecipe:
    """``source``'s recipe in ``to_provider``'s terms. ``epochs`` and ``batch_size``
    replace the source's before translation (a batch size the new provider does not
    allow, e.g. below its minimum, is fixed this way); ``method`` and ``overrides``
    (provider options) win over the translation, each with its own mapping line."""
    recipe = _installed(source.provider).recipe_from_job(
        source.method, source.hyperparameters, source.spec
    )
    was_batch = recipe.batch_size
    recipe = recipe.with_epochs(epochs)
    if batch_size is not None:
        recipe = replace(recipe, batch_size=batch_size)
    translated = _installed(to_provider).translate_recipe(recipe)
    lines = list(translated.lines)
    if epochs is not None:
        lines = [
            replace(line, note="set with --epochs") if line.setting == "epochs" else line
            for line in lines
        ]
    if batch_size is not None:  # the mapping shows what the source job had
        lines = [
            replace(line, source="-" if was_batch is None else shown(was_batch), note=BATCH_NOTE)
            if line.setting == "batch size"
            else line
            for line in lines
        ]
    chosen = translated.method
    if method is not None and method != translated.method:
        lines.append(MappingLine("method", translated.method, method, "set with --method"))
        chosen = method
    opts = dict(translated.options)
    for key, value in (overrides or {}).items():
        before = shown(opts[key]) if key in opts else "-"
        lines.append(MappingLine(f"option {key}", before, shown(value), OVERRIDE_NOTE))
        opts[key] = value
    return CarriedRecipe(
        recipe,
        RecipeTranslation(chosen, dict(translated.hyperparameters), opts, tuple(lines)),
    )


def mapping_text(lines: tuple[MappingLine, ...] | list[MappingLine], width: int = 80) -> list[str]:
    """The mapping as lines of at most ``width`` columns: ``setting  from -> to``, with
    the note after it, or wrapped under it when it does not fit."""
    indent = " " * 8
    out = []
    name_w = max((len(line.setting) for line in lines), default=0)
    for line in lines:
        head = f"{indent}{line.setting:<{name_w}}  {line.source} -> {line.target}"
        if not line.note:
            out.append(head)
        elif len(head) + len(line.note) + 4 <= width:  # "  (note)"
            out.append(f"{head}  ({line.note})")
        else:
            out.append(head)
            out += textwrap.wrap(
                f"({line.note})",
                width,
                initial_indent=indent + "  ",
                subsequent_indent=indent + "   ",
            )
    return out
