"""The emulator's parts without HTTP: clock, answers, request checks, curves, tokens."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from app.sandbox import metrics
from app.sandbox.clock import SandboxClock
from app.sandbox.errors import ApiError
from app.sandbox.job_request import parse_job_request
from app.sandbox.responder import GENERIC_REPLY, Memory, Pair, base_model_reply, normalize
from app.sandbox.training_data import auto_epochs, load_examples
from tests.sandbox.conftest import jsonl, preference_rows, sentiment_rows

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

# ---------------------------------------------------------------------------- clock


def test_a_frozen_clock_moves_only_when_advanced():
    clock = SandboxClock(datetime(2027, 1, 6, 23, 59, 30, tzinfo=UTC), frozen=True)
    before = clock.now()
    assert clock.now() == before
    assert clock.today() == date(2027, 1, 6)
    clock.advance(45)
    assert clock.now() == before + 45 and clock.today() == date(2027, 1, 7)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_running_clock_follows_the_host_and_unfreezes_where_it_stood():
    clock = SandboxClock(1_000.0)
    first = clock.now()
    assert 1_000.0 <= first < 1_001.0
    clock.freeze()
    frozen_at = clock.now()
    clock.advance(10)
    clock.unfreeze()
    assert frozen_at + 10 <= clock.now() < frozen_at + 11


# -------------------------------------------------------------------------- answers


def test_memory_recalls_exact_then_nearest_then_most_common():
    memory = Memory(
        [Pair("Is it raining?", "yes"), Pair("Is the sun out", "no"), Pair("Cold?", "yes")]
    )
    assert memory.answer("  is IT   raining? ") == "yes"
    assert normalize("  A\u00a0B  c ") == "a b c"
    assert memory.answer("is the sun shining") == "no"  # shares 'is', 'the', 'sun'
    assert memory.answer("qwerty") == "yes"  # nothing in common: the most common reply
    assert memory.answer("qwerty", fallback_to_most_common=False) is None


def test_ties_go_to_the_earlier_example():
    memory = Memory([Pair("red apple", "A"), Pair("red cherry", "B")])
    assert memory.answer("red") == "A"


def test_base_model_zero_shot_is_generic_and_few_shot_uses_the_turns():
    assert base_model_reply("gpt-x", [{"role": "user", "content": "hi"}]) == GENERIC_REPLY.format(
        model="gpt-x"
    )
    turns = [
        {"role": "user", "content": "2+2"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3+3"},
        {"role": "assistant", "content": "6"},
        {"role": "user", "content": "3+3"},
    ]
    assert base_model_reply("gpt-x", turns) == "6"


# ------------------------------------------------------------------ request checks


def test_an_omitted_method_is_supervised_with_auto_everything():
    request = parse_job_request({"model": "gpt-4o-mini", "training_file": "file-1"})
    assert request.method == "supervised"
    assert request.hyperparameters == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }


def test_dpo_accepts_beta_and_the_legacy_form_still_works():
    request = parse_job_request(
        {
            "model": "m",
            "training_file": "f",
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.5, "n_epochs": 2}}},
        }
    )
    assert request.hyperparameters["beta"] == 0.5 and request.hyperparameters["n_epochs"] == 2
    legacy = parse_job_request(
        {"model": "m", "training_file": "f", "hyperparameters": {"batch_size": 8}}
    )
    assert legacy.hyperparameters["batch_size"] == 8


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"training_file": "f"}, "model"),
        ({"model": "m"}, "training_file"),
        ({"model": "m", "training_file": "f", "colour": "red"}, "colour"),
        ({"model": "m", "training_file": "f", "method": {"type": "sft"}}, "method.type"),
        ({"model": "m", "training_file": "f", "method": {}}, "method.type"),
        ({"model": "m", "training_file": "f", "seed": True}, "seed"),
        (
            {
                "model": "m",
                "training_file": "f",
                "hyperparameters": {"n_epochs": 2},
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"n_epochs": 3}},
                },
            },
            "hyperparameters",
        ),
        (
            {"model": "m", "training_file": "f", "integrations": [{"type": "slack"}]},
            "integrations[0]",
        ),
    ],
)
def test_bad_bodies_name_the_parameter(body, param):
    with pytest.raises(ApiError) as caught:
        parse_job_request(body)
    assert caught.value.status == 400 and caught.value.param == param


# --------------------------------------------------------------- curves and tokens


def test_metrics_are_deterministic_and_trend_down():
    run = [
        metrics.step_metrics(9, s, 50, steps_per_epoch=10, has_validation=True)
        for s in range(1, 51)
    ]
    again = [
        metrics.step_metrics(9, s, 50, steps_per_epoch=10, has_validation=True)
        for s in range(1, 51)
    ]
    assert run == again
    assert (
        sum(r["train_loss"] for r in run[-10:]) / 10
        < sum(r["train_loss"] for r in run[:10]) / 10 / 3
    )
    assert all(0 <= r["train_mean_token_accuracy"] <= 1 for r in run)
    assert [r["step"] for r in run if "full_valid_loss" in r] == [10, 20, 30, 40, 50]
    other_seed = metrics.step_metrics(10, 1, 50, steps_per_epoch=10, has_validation=True)
    assert other_seed["train_loss"] != run[0]["train_loss"]


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(10, 10), (12, 8), (34, 3), (50, 3), (8_333, 3), (8_334, 2), (12_501, 1), (30_000, 1)],
)
def test_auto_epochs(n, epochs):
    assert auto_epochs(n) == epochs


def test_examples_remember_prompt_and_reply_for_chat_and_preference_data():
    chat = load_examples(jsonl(sentiment_rows()), "gpt-4o-mini")
    assert len(chat) == 12 and chat[1].reply == "negative"
    assert chat[1].prompt == "Terrible service, cold soup, never again"
    preference = load_examples(jsonl(preference_rows()), "gpt-4o-mini")
    assert preference[0].reply == "positive"
    # A DPO example trains on its input twice, once with each output.
    assert preference[0].tokens > chat[0].tokens - 20
    weighted = {
        "messages": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "weight": 0},
        ]
    }
    [example] = load_examples(jsonl([weighted]), "gpt-4o-mini")
    assert (example.prompt, example.reply) == ("q1", "a1")  # weight 0 is not trained on
    assert math.isfinite(example.tokens)
