"""An option the user set is never silently overridden: it is kept (and what depends on
it aligned to it) or the job is refused with the reason, before anything starts."""

from __future__ import annotations

import pytest

from providers.errors import SpecRejected
from providers.local.options import resolve_hyperparameters
from providers.local.precision import choose_precision
from providers.local.training import common_args
from providers.types import JobSpec

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

CPU = choose_precision("auto", "cpu", None)


def _spec(method: str = "lora", validation: bool = True, **options) -> JobSpec:
    return JobSpec(
        name="t",
        base_model="m",
        train_path="train.jsonl",
        validation_path="validation.jsonl" if validation else None,
        method=method,
        options=options,
    )


def _training_args(spec: JobSpec, tmp_path, n_train: int = 400) -> dict:
    hp = resolve_hyperparameters(spec)
    args, _ = common_args(
        hp,
        tmp_path,
        n_train,
        has_eval=spec.validation_path is not None,
        device="cpu",
        precision=CPU,
    )
    return args


def test_save_steps_set_with_early_stopping_is_kept_and_evaluation_follows_it(tmp_path):
    # 400 examples / batch 8 x 3 epochs = 150 steps: auto would evaluate every 15 steps
    args = _training_args(_spec(save_steps=20), tmp_path)
    assert args["save_steps"] == 20
    assert args["eval_steps"] == 20, "an auto eval interval follows the checkpoint interval"
    assert args["load_best_model_at_end"], "early stopping is still on"


def test_save_steps_that_fit_eval_steps_are_both_kept(tmp_path):
    args = _training_args(_spec(save_steps=20, eval_steps=5), tmp_path)
    assert (args["save_steps"], args["eval_steps"]) == (20, 5)


def test_save_steps_that_do_not_fit_eval_steps_are_refused_with_the_reason():
    with pytest.raises(SpecRejected) as info:
        resolve_hyperparameters(_spec(save_steps=20, eval_steps=15))
    assert info.value.param == "save_steps"
    assert "save_steps=20 is not a multiple of eval_steps=15" in info.value.message
    assert "early_stopping_patience=0" in info.value.message  # what to do


def test_without_early_stopping_the_intervals_are_independent(tmp_path):
    args = _training_args(_spec(save_steps=20, eval_steps=15, early_stopping_patience=0), tmp_path)
    assert (args["save_steps"], args["eval_steps"]) == (20, 15)
    args = _training_args(_spec(validation=False, save_steps=20), tmp_path)
    assert args["save_steps"] == 20 and args["eval_strategy"] == "no"


def test_auto_checkpoints_follow_the_evaluations(tmp_path):
    args = _training_args(_spec(), tmp_path)
    assert args["save_steps"] == args["eval_steps"] == 15


@pytest.mark.parametrize(
    ("method", "options", "refusal"),
    [
        ("full", {"r": 8}, "option r does not apply to full training"),
        ("full", {"target_modules": "q_proj"}, "option target_modules does not apply to full"),
        ("full", {"merge": True}, "option merge does not apply to full training"),
        ("dpo", {"packing": True}, "option packing applies to supervised training"),
        ("lora", {"bf16": "true", "device": "cpu"}, "option bf16=true needs a CUDA GPU"),
        ("lora", {"save_steps": 0}, "option save_steps=0: must be at least 1"),
    ],
)
def test_an_option_that_would_be_ignored_is_refused(method, options, refusal):
    with pytest.raises(SpecRejected) as info:
        resolve_hyperparameters(_spec(method=method, **options))
    assert refusal in info.value.message


def test_the_same_options_where_they_apply_are_accepted():
    assert resolve_hyperparameters(_spec(method="lora", r=8, merge=True))["r"] == 8
    assert resolve_hyperparameters(_spec(method="lora", packing=True))["packing"] is True
    assert resolve_hyperparameters(_spec(method="full", merge=False))["tuning"] == "full"
