"""The hyperparameter mapping of a migration: each provider reads its own job's settings
into a neutral recipe and translates a recipe into its own knobs (the contract's
`recipe_from_job` / `translate_recipe`); `app.promotion.recipes` adds the user's
overrides and prints the mapping in 80 columns. Real provider classes, real job rows."""

from __future__ import annotations

from typing import ClassVar

import pytest

from app.promotion.recipes import RecipeError, carry_recipe, mapping_text
from db.models import Job
from providers.base import Capabilities, Provider
from providers.local import LocalProvider
from providers.openai.provider import OpenAIProvider
from providers.recipe import TrainingRecipe

# What the OpenAI emulator reports for a job with auto settings, and what a local LoRA
# job reports (its resolved settings, `_public_hp`).
OPENAI_REPORTED = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
LOCAL_REPORTED = {
    "method": "lora",
    "tuning": "lora",
    "r": 8,
    "alpha": 16,
    "dropout": 0.1,
    "target_modules": "q_proj,v_proj",
    "learning_rate": 3e-3,
    "epochs": 10,
    "batch_size": 8,
    "seed": 7,
}


def _job(provider: str, method: str, reported: dict, spec: dict | None = None) -> Job:
    return Job(
        uid="u",
        name="n",
        provider=provider,
        base_model="b",
        method=method,
        hyperparameters=reported,
        spec=spec or {"hyperparameters": {}, "options": {}, "seed": None},
    )


def _by_setting(carried) -> dict[str, tuple[str, str, str]]:
    return {line.setting: (line.source, line.target, line.note) for line in carried.lines}


def test_openai_to_local_carries_epochs_and_batch_and_says_the_multiplier_cannot_carry():
    carried = carry_recipe(_job("openai", "supervised", OPENAI_REPORTED), "local")
    plan = carried.translation
    assert plan.method == "lora" and plan.hyperparameters == {}
    assert plan.options == {"epochs": 3, "batch_size": 1}
    lines = _by_setting(plan)
    assert lines["epochs"][:2] == ("3", "3") and lines["batch size"][:2] == ("1", "1")
    source, target, note = lines["learning rate"]
    assert source == "x1.8 (openai scale)" and target == "0.0002"
    assert "unpublished base rate" in note and "local default for lora" in note
    assert lines["LoRA rank"][:2] == ("-", "16") and "did not say" in lines["LoRA rank"][2]


def test_local_to_openai_carries_epochs_and_batch_leaves_the_rate_and_drops_lora():
    carried = carry_recipe(_job("local", "lora", LOCAL_REPORTED), "openai")
    assert carried.source.learning_rate == 3e-3 and carried.source.lora_r == 8
    assert carried.source.seed == 7
    plan = carried.translation
    assert plan.method == "supervised" and plan.options == {}
    assert plan.hyperparameters == {"n_epochs": 10, "batch_size": 8}
    lines = _by_setting(plan)
    assert lines["learning rate"][:2] == ("0.003", "auto")
    assert "only a multiplier" in lines["learning rate"][2]
    assert lines["LoRA rank"][:2] == ("8", "-") and lines["LoRA modules"][0] == "q_proj,v_proj"


def test_local_to_local_carries_every_knob_and_openai_to_openai_the_multiplier():
    local = carry_recipe(_job("local", "lora", LOCAL_REPORTED), "local").translation
    assert local.method == "lora"
    assert local.options == {
        "epochs": 10,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "r": 8,
        "alpha": 16,
        "dropout": 0.1,
        "target_modules": "q_proj,v_proj",
    }
    hosted = carry_recipe(_job("openai", "supervised", OPENAI_REPORTED), "openai").translation
    assert hosted.hyperparameters == {
        "n_epochs": 3,
        "batch_size": 1,
        "learning_rate_multiplier": 1.8,
    }


def test_a_full_fine_tune_and_dpo_keep_their_kind_locally():
    full = dict(LOCAL_REPORTED, method="full", tuning="full")
    plan = carry_recipe(_job("local", "full", full), "local").translation
    assert plan.method == "full" and "r" not in plan.options
    dpo = carry_recipe(_job("openai", "dpo", OPENAI_REPORTED), "local").translation
    assert dpo.method == "dpo"


def test_overrides_win_and_are_printed():
    carried = carry_recipe(
        _job("openai", "supervised", OPENAI_REPORTED),
        "local",
        epochs=10,
        method="qlora",
        overrides={"learning_rate": 3e-3, "batch_size": 8},
    )
    plan = carried.translation
    assert plan.method == "qlora"
    assert plan.options["epochs"] == 10 and plan.options["batch_size"] == 8
    assert plan.options["learning_rate"] == 3e-3
    lines = _by_setting(plan)
    assert lines["epochs"] == ("10", "10", "set with --epochs")
    assert lines["option batch_size"] == ("1", "8", "set with --option")
    assert lines["option learning_rate"] == ("-", "0.003", "set with --option")
    assert lines["method"] == ("lora", "qlora", "set with --method")
    text = mapping_text(plan.lines)
    assert all(len(line) <= 80 for line in text), text
    assert any(line.strip().startswith("learning rate") and "-> 0.0002" in line for line in text)


def test_a_batch_size_override_reaches_every_target_and_shows_the_source_s():
    """``--batch-size``: a hosted job's auto batch of 1 is below what some providers
    allow; the override replaces the recipe's before translation, on any target."""
    for target, where in (("local", "options"), ("openai", "hyperparameters")):
        carried = carry_recipe(
            _job("openai", "supervised", OPENAI_REPORTED), target, batch_size=8
        ).translation
        assert getattr(carried, where)["batch_size"] == 8, target
        assert _by_setting(carried)["batch size"] == ("1", "8", "set with --batch-size")
    unknown = carry_recipe(_job("openai", "supervised", {}), "openai", batch_size=16)
    assert _by_setting(unknown.translation)["batch size"] == ("-", "16", "set with --batch-size")


class Plain(Provider):
    """A provider that declares nothing about recipes: the contract's neutral default."""

    name: ClassVar[str] = "plain"
    display_name: ClassVar[str] = "Plain"
    capabilities: ClassVar[Capabilities] = Capabilities(methods=("sft",))


Plain.__abstractmethods__ = frozenset()


def test_the_contract_default_is_provider_neutral():
    recipe = Plain.recipe_from_job("sft", {"n_epochs": 2, "learning_rate_multiplier": 0.5}, {})
    assert recipe.epochs == 2 and recipe.multiplier_scale == "plain"
    own = Plain.translate_recipe(recipe)
    assert own.method == "sft"  # a method it does not list becomes its first
    assert own.hyperparameters == {"n_epochs": 2, "learning_rate_multiplier": 0.5}
    other = Plain.translate_recipe(
        TrainingRecipe(epochs=4, learning_rate=1e-4, lora_r=8, source="elsewhere")
    )
    assert other.hyperparameters == {"n_epochs": 4}
    notes = {line.setting: line for line in other.lines}
    assert notes["learning rate"].target == "auto"
    assert notes["LoRA rank"].source == "8" and notes["LoRA rank"].target == "-"
    # a multiplier carries only onto the same scale: OpenAI leaves another's to itself
    foreign = TrainingRecipe(learning_rate_multiplier=2.0, multiplier_scale="plain")
    assert (
        "learning_rate_multiplier" not in OpenAIProvider.translate_recipe(foreign).hyperparameters
    )
    # and the real providers override it where they have native knobs
    assert LocalProvider.translate_recipe is not Provider.translate_recipe
    assert OpenAIProvider.translate_recipe is not Provider.translate_recipe


def test_an_unknown_target_is_refused_with_the_known_providers():
    with pytest.raises(RecipeError) as refused:
        carry_recipe(_job("openai", "supervised", OPENAI_REPORTED), "nowhere")
    message = str(refused.value)
    assert "unknown provider 'nowhere'" in message and "local" in message and "openai" in message
