"""The wizard's form rules, without Textual."""

from __future__ import annotations

from datetime import date

import pytest

from app.tui.screens.launch_form import (
    DatasetChoice,
    LaunchForm,
    parse_option,
    sunset_warning,
    validate_form,
)
from providers.base import Capabilities, ProviderOption
from providers.types import BaseModelInfo

OK = DatasetChoice(1, "tickets", "ok", 90, 10, "chat")
MODELS = [
    BaseModelInfo("gpt-4.1-mini-2025-04-14", ("supervised", "dpo"), sunset="2027-01-14"),
    BaseModelInfo("old-model", ("supervised",), sunset="2026-01-01"),
]
CAPS = Capabilities(supports_auto_hyperparameters=True, methods=("supervised", "dpo"))


def _form(**changes) -> LaunchForm:
    form = LaunchForm(
        name="tickets-ft",
        dataset=OK,
        provider="openai",
        base_model=MODELS[0].id,
        method="supervised",
        capabilities=CAPS,
        base_models=MODELS,
        provider_options=(
            ProviderOption("r", "LoRA rank", int, 16),
            ProviderOption("scheduler", "schedule", str, "cosine", ("cosine", "linear")),
            ProviderOption("learning_rate", "lr", float, "auto"),
        ),
    )
    for key, value in changes.items():
        setattr(form, key, value)
    return form


def test_a_complete_form_has_no_problems():
    assert validate_form(_form()) == {}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": ""}, "name", "name"),
        ({"name": "has space"}, "name", "letters"),
        ({"dataset": None}, "dataset", "ftm data add"),
        (
            {"dataset": DatasetChoice(2, "bad", "errors", 5, 1, "chat")},
            "dataset",
            "ftm data check bad",
        ),
        ({"base_model": "old-model"}, "base_model", "retired"),
        ({"method": "reinforcement"}, "method", "supervised, dpo"),
        ({"method": "dpo"}, "method", "preference"),
        ({"n_epochs": "three"}, "n_epochs", "not a number"),
        ({"n_epochs": "0"}, "n_epochs", "greater than 0"),
        ({"n_epochs": "500"}, "n_epochs", "at most 50"),
        ({"batch_size": "-1"}, "batch_size", "greater than 0"),
        ({"learning_rate_multiplier": "x"}, "learning_rate_multiplier", "not a number"),
        ({"options": {"r": "sixteen"}}, "option:r", "not a whole number"),
        ({"options": {"scheduler": "wavy"}}, "option:scheduler", "cosine, linear"),
    ],
)
def test_each_field_says_what_is_wrong(changes, field, words):
    problems = validate_form(_form(**changes))
    assert field in problems, problems
    assert words in problems[field]


def test_values_parse_to_what_launch_takes():
    form = _form(
        n_epochs="3",
        batch_size="auto",
        learning_rate_multiplier="0.5",
        options={"r": "8", "scheduler": "cosine", "learning_rate": "auto"},
    )
    hp = form.hyperparameters()
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (3, "auto", 0.5)
    # only what differs from the defaults is sent
    assert form.option_values() == {"r": 8}


def test_parse_option_auto_only_where_the_default_is_auto():
    assert parse_option(ProviderOption("learning_rate", "lr", float, "auto"), "auto") == "auto"
    with pytest.raises(ValueError, match="r: 'auto' is not a whole number"):
        parse_option(ProviderOption("r", "rank", int, 16), "auto")
    assert parse_option(ProviderOption("merge", "merge", bool, False), "yes") is True


def test_sunset_warning_counts_days_and_flags_retired_models():
    warning = sunset_warning(MODELS[0], on=date(2026, 11, 28))
    assert "retires on 2027-01-14 (47 days left)" in warning
    assert "was retired on 2026-01-01" in sunset_warning(MODELS[1], on=date(2026, 11, 28))
    assert sunset_warning(BaseModelInfo("m"), on=date(2026, 11, 28)) is None
