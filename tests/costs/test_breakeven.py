"""Inference per request, break-even and the cheapest option, hand-computed."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from app.costs.breakeven import break_even_requests
from app.costs.catalog import load_catalog
from app.costs.compare import compare
from app.costs.dataset_inputs import find_dataset
from app.costs.errors import CostError, UnknownGPU
from app.database import get_engine
from app.settings import get_settings
from db.engine import read_session
from tests.costs.conftest import LABELS, chat_examples

TODAY = date(2026, 11, 28)


def _tok(text: str) -> int:
    from app.tokens import get_encoding

    return len(get_encoding("o200k_base").encode(text))


def test_break_even_formula_and_no_crossing():
    assert break_even_requests(100.0, 0.001, 0.003) == pytest.approx(50_000)
    assert break_even_requests(0.0, 0.001, 0.003) == 0
    assert break_even_requests(100.0, 0.003, 0.003) is None  # same per-request cost: never
    assert break_even_requests(100.0, 0.004, 0.003) is None  # dearer per request: never


def test_hosted_comparison_hand_computed(make_dataset):
    examples = chat_examples(40)
    ds = make_dataset("tickets", examples)
    with read_session(get_engine()) as s:
        # One month: every option serves the whole horizon (the horizon rule has its own tests).
        r = compare(
            s, ds, provider="openai", requests_per_month=50_000, horizon_months=1, today=TODAY
        )
    # The request's shape, counted by the data-prep recipe on the examples themselves.
    # 3 per message + the role + the content; the reply is billed as output by its content.
    system = 3 + _tok("system") + _tok("Route the ticket to one team.")
    users = [3 + _tok("user") + _tok(e["messages"][1]["content"]) for e in examples]
    outs = [_tok(e["messages"][2]["content"]) for e in examples]
    prompt = system + np.mean(users) + 3
    shot = float(
        np.median([u + 3 + _tok("assistant") + o for u, o in zip(users, outs, strict=True)])
    )
    out = float(np.mean(outs))
    assert r.profile["k"] == len(LABELS)  # one example per label
    assert r.profile["prompt_tokens"] == pytest.approx(prompt)
    assert r.profile["shot_tokens"] == pytest.approx(shot)
    c_base = ((prompt + 4 * shot) * 0.15 + out * 0.60) / 1e6
    c_ft = (prompt * 0.30 + out * 1.20) / 1e6
    total = sum(
        sum(3 + _tok(m["role"]) + _tok(m["content"]) for m in e["messages"]) + 3 for e in examples
    )
    F = total * 3 / 1e6 * 3.00  # 40 examples x 3 = 120 >= 100: 3 epochs
    base, hosted = r.baseline, r.option("hosted:gpt-4o-mini-2024-07-18")
    assert base.per_request_usd == pytest.approx(c_base)
    assert hosted.per_request_usd == pytest.approx(c_ft)
    assert hosted.one_time_usd == pytest.approx(F)
    assert hosted.break_even_requests == pytest.approx(F / (c_base - c_ft))
    assert hosted.monthly_usd == pytest.approx(c_ft * 50_000)
    # The cumulative-cost lines cross at the break-even.
    R = hosted.break_even_requests
    assert hosted.one_time_usd + hosted.per_request_usd * R == pytest.approx(
        base.per_request_usd * R
    )
    assert r.cheapest == min(r.options, key=lambda o: o.horizon_usd).key
    assert any("2027-01-14" in w for w in hosted.warnings)
    assert r.catalog["as_of"] and r.today == "2026-11-28"


def test_no_break_even_when_fine_tuned_costs_more_per_request(make_dataset):
    ds = make_dataset("free", chat_examples(30, labels=None))
    with read_session(get_engine()) as s:
        # k=0: the baseline prompt is as short as the fine-tuned one, at lower base prices.
        r = compare(s, ds, provider="openai", k=0, horizon_months=1, today=TODAY)
    hosted = r.option("hosted:gpt-4o-mini-2024-07-18")
    assert hosted.per_request_usd > r.baseline.per_request_usd
    assert hosted.break_even_requests is None and hosted.break_even_months is None
    assert r.cheapest == r.baseline.key


def test_long_few_shot_prefix_is_priced_as_cached_input(make_dataset):
    long_system = "You route tickets. " + "Policy clause. " * 400  # > 1024 tokens
    examples = chat_examples(30)
    for e in examples:
        e["messages"][0]["content"] = long_system
    ds = make_dataset("long", examples)
    with read_session(get_engine()) as s:
        r = compare(s, ds, provider="openai", today=TODAY)
    inf = r.baseline.inference
    assert inf["cached_prompt_tokens"] == pytest.approx(
        r.profile["system_tokens"] + r.profile["k"] * r.profile["shot_tokens"]
    )
    uncached = inf["prompt_tokens"] - inf["cached_prompt_tokens"]
    assert inf["usd_per_request"] == pytest.approx(
        (uncached * 0.15 + inf["cached_prompt_tokens"] * 0.075 + inf["output_tokens"] * 0.6) / 1e6
    )


def test_local_option_always_on_cost_and_gpu_choice(make_dataset):
    ds = make_dataset("tickets", chat_examples(200))
    c = load_catalog(use_settings=False)
    with read_session(get_engine()) as s:
        r = compare(
            s,
            ds,
            provider="local",
            local_models=["meta-llama/Llama-3.1-8B"],
            serve_gpu="l4",
            requests_per_month=1000,
            today=TODAY,
        )
    local = next(o for o in r.options if o.kind == "local")
    l4 = c.hourly_price(c.gpu("l4")).usd_per_hour
    assert local.monthly_usd == pytest.approx(l4 * 730)  # one always-on GPU carries 1k/month
    assert local.per_request_usd == pytest.approx(l4 * 730 / 1000)
    t = local.training
    # QLoRA 8B fits the small GPUs; the cheapest-to-train GPU was chosen, never the CPU.
    fits = {f["gpu"]: f for f in t["fits"]}
    assert fits["rtx-4090"]["fits"] and not fits["cpu"]["fits"]
    cheapest = min(
        (f for f in t["fits"] if f["fits"] and f["gpu"] != "cpu"), key=lambda f: f["cost_usd"]
    )
    assert t["gpu"] == cheapest["gpu"] and local.one_time_usd == pytest.approx(cheapest["cost_usd"])
    assert "approximated with tiktoken:o200k_base" in t["tokenizer_note"]


def test_full_70b_fits_no_gpu_and_says_so_without_failing_the_estimate(make_dataset):
    from app.costs.local_memory import LocalTrainingConfig

    ds = make_dataset()
    with read_session(get_engine()) as s:
        r = compare(
            s,
            ds,
            provider="local",
            local_models=["meta-llama/Llama-3.1-70B"],
            local_config=LocalTrainingConfig(method="full"),
            today=TODAY,
        )
    local = next(o for o in r.options if o.kind == "local")
    assert not any(f["fits"] for f in local.training["fits"])
    (warning,) = [w for w in local.warnings if "will not fit" in w]
    assert "more than any catalog GPU has" in warning and "it fits with --method qlora" in warning


def test_unknown_names_fail_before_any_work(make_dataset):
    ds = make_dataset()
    with read_session(get_engine()) as s:
        with pytest.raises(UnknownGPU, match="known: a100-80gb"):
            compare(s, ds, gpu="tpu-v5")
        with pytest.raises(CostError, match="unknown provider"):
            compare(s, ds, provider="acme-cloud")
        with pytest.raises(CostError, match="no dataset 'nope'; known datasets: tickets"):
            find_dataset(s, "nope")


def test_request_profile_is_cached_on_disk_for_later_processes(make_dataset, ftm_home, monkeypatch):
    from app.costs import dataset_inputs

    ds = make_dataset("tickets", chat_examples(50))
    first = dataset_inputs.prompt_profile(ds)
    assert list((ftm_home / "cache" / "cost-profiles").glob("*.json"))
    dataset_inputs._profile_cached.cache_clear()  # as a new process

    def no_tokenizer(*_a, **_k):
        raise AssertionError("the tokenizer was loaded again")

    monkeypatch.setattr("app.tokens.get_encoding", no_tokenizer)
    assert dataset_inputs.prompt_profile(ds) == first
    # A changed file is measured again (its identity is in the cache key).
    (get_settings().file_store.local_path(ds.data_dir) / "train.jsonl").write_text("")
    with pytest.raises(AssertionError, match="tokenizer was loaded again"):
        dataset_inputs.prompt_profile(ds)
