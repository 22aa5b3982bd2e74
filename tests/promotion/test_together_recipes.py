"""Together's side of a migration's hyperparameter mapping (`TogetherProvider.
recipe_from_job` / `translate_recipe`): its absolute learning rate, LoRA or full, and its
LoRA knobs, read from its jobs and written into its options; a multiplier maps through
the declared base rate 1e-5. Real provider classes, real job rows, and the translated job
checked against the emulator's limits by the provider's own validation."""

from __future__ import annotations

import pytest

from app.promotion.recipes import carry_recipe
from app.sandbox.together.catalog import MODELS, limits
from db.models import Job
from providers.together import limits as together_limits
from providers.together.limits import DEFAULT_LEARNING_RATE
from providers.types import Hyperparameters, JobSpec
from tests.promotion.test_recipes import LOCAL_REPORTED, OPENAI_REPORTED

# What the Together provider records for a finished LoRA job (convert.hyperparameters_of).
TOGETHER_REPORTED = {
    "n_epochs": 2,
    "batch_size": 16,
    "learning_rate": 2e-5,
    "n_checkpoints": 1,
    "n_evals": 0,
    "method": "supervised",
    "training_type": "Lora",
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_trainable_modules": "q_proj,v_proj",
}
SMALL = "meta-llama/Llama-3.2-1B-Instruct"


def _job(provider: str, method: str, reported: dict | None, spec: dict | None = None) -> Job:
    return Job(
        uid="u",
        name="n",
        provider=provider,
        base_model="b",
        method=method,
        hyperparameters=reported,
        spec=spec or {"hyperparameters": {}, "options": {}, "seed": None},
    )


def _by_setting(plan) -> dict[str, tuple[str, str, str]]:
    return {line.setting: (line.source, line.target, line.note) for line in plan.lines}


def _accepted_by_together(plan, tmp_path) -> list[str]:
    """What the provider's own checks say of a job built from the translation, against
    the emulator's limits for a 1B model (empty: Together would take it)."""
    train = tmp_path / "train.jsonl"
    train.write_text("{}\n")
    spec = JobSpec(
        name="m",
        base_model=SMALL,
        train_path=str(train),
        method=plan.method,
        hyperparameters=Hyperparameters(**plan.hyperparameters),
        options=plan.options,
    )
    return together_limits.local_problems(spec, ("supervised", "dpo")) + together_limits.problems(
        spec, limits(MODELS[SMALL])
    )


def test_together_reads_its_absolute_rate_and_lora_knobs(tmp_path):
    carried = carry_recipe(_job("together", "supervised", TOGETHER_REPORTED), "together")
    source = carried.source
    assert (source.tuning, source.learning_rate, source.lora_r, source.lora_alpha) == (
        "lora",
        2e-5,
        16,
        32,
    )
    assert (source.lora_dropout, source.lora_target_modules) == (0.05, "q_proj,v_proj")
    plan = carried.translation
    assert plan.method == "supervised"
    assert plan.hyperparameters == {"n_epochs": 2, "batch_size": 16, "learning_rate": 2e-5}
    assert plan.options == {
        "lora": True,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_trainable_modules": "q_proj,v_proj",
    }
    assert _accepted_by_together(plan, tmp_path) == []


def test_together_to_local_carries_the_absolute_rate_and_every_lora_knob():
    plan = carry_recipe(_job("together", "supervised", TOGETHER_REPORTED), "local").translation
    assert plan.method == "lora"
    assert plan.options == {
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 2e-5,
        "r": 16,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": "q_proj,v_proj",
    }


def test_local_to_together_carries_every_knob(tmp_path):
    plan = carry_recipe(_job("local", "lora", LOCAL_REPORTED), "together").translation
    assert plan.method == "supervised"
    assert plan.hyperparameters == {"n_epochs": 10, "batch_size": 8, "learning_rate": 3e-3}
    assert plan.options == {
        "lora": True,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_trainable_modules": "q_proj,v_proj",
    }
    lines = _by_setting(plan)
    assert lines["learning rate"][:2] == ("0.003", "0.003")
    assert lines["LoRA rank"] == ("8", "8", "carried")
    assert _accepted_by_together(plan, tmp_path) == []


def test_an_openai_multiplier_maps_through_together_s_base_rate(tmp_path):
    plan = carry_recipe(_job("openai", "supervised", OPENAI_REPORTED), "together").translation
    assert plan.hyperparameters == {
        "n_epochs": 3,
        "batch_size": 1,
        "learning_rate": pytest.approx(1.8 * DEFAULT_LEARNING_RATE),
    }
    source, target, note = _by_setting(plan)["learning rate"]
    assert source == "x1.8 (openai scale)" and target == "1.8e-05"
    assert "base rate 1e-05" in note
    assert _by_setting(plan)["LoRA rank"] == ("-", "default", "Together AI's default")
    # batch size 1 is below the model's LoRA minimum: the provider's own check says so.
    assert any("batch_size=1" in p for p in _accepted_by_together(plan, tmp_path))


def test_together_to_openai_leaves_the_rate_and_drops_lora():
    plan = carry_recipe(_job("together", "supervised", TOGETHER_REPORTED), "openai").translation
    assert plan.hyperparameters == {"n_epochs": 2, "batch_size": 16}
    lines = _by_setting(plan)
    assert lines["learning rate"][:2] == ("2e-05", "auto")
    assert lines["LoRA rank"][:2] == ("16", "-")


def test_a_full_fine_tune_stays_full_and_a_launch_multiplier_is_read_as_absolute(tmp_path):
    full = dict(TOGETHER_REPORTED, training_type="Full")
    for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_trainable_modules"):
        full.pop(key)
    plan = carry_recipe(_job("together", "supervised", full), "together").translation
    assert plan.options == {"lora": False}
    assert carry_recipe(_job("together", "supervised", full), "local").translation.method == (
        "full"
    )
    # A job that reported nothing yet: what ftm launched it with (a multiplier of 1e-5).
    launched = {
        "hyperparameters": {"n_epochs": "auto", "learning_rate_multiplier": 3.0},
        "options": {"lora": True, "lora_r": 4},
        "seed": 5,
    }
    source = carry_recipe(_job("together", "supervised", None, launched), "local").source
    assert source.learning_rate == pytest.approx(3e-5) and source.lora_r == 4
    assert source.epochs is None and source.seed == 5
    dpo = carry_recipe(_job("local", "dpo", dict(LOCAL_REPORTED, method="dpo")), "together")
    assert dpo.translation.method == "dpo"
    assert _accepted_by_together(plan, tmp_path) == []
