"""Together's declared prices (`TogetherProvider.pricing`): they agree with what the
emulator bills for every model both know, the unverified figures say so, and ftm's cost
commands price Together from them (`ftm prices`, `ftm estimate`)."""

from __future__ import annotations

import json

import pytest

from app.sandbox.together import catalog as emulator_catalog
from app.sandbox.together import rates, serving
from providers.together import TogetherProvider
from providers.types import JobSpec
from tests.costs.conftest import chat_examples
from tests.costs.conftest import make_dataset as make_dataset  # a fixture
from tests.costs.test_cli import ftm

TABLE = TogetherProvider.pricing()
BOTH_KNOW = sorted(set(TABLE.models) & set(emulator_catalog.MODELS))


def test_every_declared_model_is_one_the_emulator_fine_tunes():
    assert BOTH_KNOW == sorted(TABLE.models)
    assert len(BOTH_KNOW) == 4  # the three suggested models and the emulator's tiny one


@pytest.mark.parametrize("model", BOTH_KNOW)
def test_declared_training_rates_are_what_the_emulator_bills(model):
    """LoRA SFT is `training`, full SFT `training_full`: the emulator's rate table (its
    one anchor, $0.48/1M LoRA SFT up to 16B, included)."""
    price = TABLE.models[model]
    params = emulator_catalog.MODELS[model].param_count
    lora = rates.dollars_per_million_tokens(params, method="sft", lora=True)
    full = rates.dollars_per_million_tokens(params, method="sft", lora=False)
    assert (price.training, price.training_full) == (lora, full)
    assert price.training_full > price.training  # Together prices the two apart


@pytest.mark.parametrize("model", BOTH_KNOW)
def test_declared_inference_is_serverless_for_the_base_and_a_dedicated_endpoint_for_the_fine_tune(
    model,
):
    price = TABLE.models[model]
    assert (price.base_input, price.base_output) == serving.INFERENCE_RATES[model]
    # No serverless LoRA: a fine-tune costs its endpoint's hours, not tokens.
    assert (price.ft_input, price.ft_output) == (0.0, 0.0)
    assert price.hosting_per_hour == 3.99


def test_the_small_bracket_anchor_and_the_unverified_label():
    assert TABLE.models["meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"].training == 0.48
    source = TABLE.sources[TABLE.models["meta-llama/Llama-3.2-1B-Instruct"].source]
    assert "UNVERIFIED" in source.text and "estimate-price" in source.text
    assert TABLE.problems() == []


def test_the_launch_warning_names_the_declared_hourly_fee():
    spec = JobSpec(name="t", base_model="meta-llama/Llama-3.2-1B-Instruct", train_path="x")
    (warning,) = TogetherProvider().launch_warnings(spec)
    assert "$3.99/h" in warning


def test_ftm_prices_shows_a_together_table():
    out = ftm("prices", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    together = data["providers"]["together"]
    assert "meta-llama/Llama-3.2-1B-Instruct" in json.dumps(together)


def test_ftm_estimate_compares_together_beside_the_others(make_dataset):
    make_dataset("tickets", chat_examples(300))
    out = ftm("estimate", "tickets", "--json")
    assert out.returncode == 0, out.stderr
    options = json.loads(out.stdout)["options"]
    on_together = [o for o in options if o["key"].endswith("@together") or "Together" in o["label"]]
    (option,) = on_together
    assert option["kind"] == "hosted"
    training = option["training"]
    assert training["usd_per_1m_tokens"] == 0.48
    # "auto" epochs priced as Together trains them (its default, 1), not by OpenAI's rule.
    assert (training["epochs"], training["epochs_rule"]) == (1, "auto")
    openai = next(o for o in options if o["key"] == "hosted:gpt-4o-mini-2024-07-18")
    assert openai["training"]["epochs"] == 3
    assert option["one_time_usd"] == pytest.approx(training["billable_tokens"] / 1e6 * 0.48)
    assert option["inference"]["hosting_usd_per_hour"] == 3.99
    alone = json.loads(ftm("estimate", "tickets", "--provider", "together", "--json").stdout)
    assert [o["kind"] for o in alone["options"]] == ["baseline", "hosted"]
