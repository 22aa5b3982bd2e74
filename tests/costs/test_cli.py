"""`ftm estimate` and `ftm prices` through the real entry point (a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT
from tests.costs.conftest import chat_examples


def ftm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


def test_estimate_prints_the_side_by_side_table(make_dataset):
    make_dataset("tickets", chat_examples(300))
    out = ftm("estimate", "tickets", "--requests-per-month", "100000")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "gpt-4o-mini-2024-07-18 4-shot" in text and "fine-tuned" in text
    assert "Llama-3.1-8B qlora" in text and "break-even" in text
    assert "Prices as of" in text and "days old" in text
    assert "Traceback" not in out.stderr


def test_estimate_json_carries_inputs_and_dates(make_dataset):
    make_dataset("tickets", chat_examples(300))
    out = ftm(
        "estimate",
        "tickets",
        "--provider",
        "local",
        "--method",
        "lora",
        "--gpu",
        "a100-80gb",
        "--model",
        "mistralai/Mistral-7B-v0.3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    kinds = [o["kind"] for o in data["options"]]
    assert kinds == ["baseline", "local"]
    local = data["options"][1]
    assert (
        local["training"]["gpu"] == "a100-80gb" and local["training"]["config"]["method"] == "lora"
    )
    assert local["training"]["price_as_of"] and local["training"]["memory"]["total"] > 14e9
    assert data["catalog"]["as_of"] and data["dataset"]["train_examples"] == 300


def test_bad_input_is_one_clear_line(make_dataset):
    make_dataset("tickets", chat_examples(20))
    for args, expected in [
        (("estimate", "tickets", "--gpu", "h900"), "error: unknown GPU 'h900'; known: a100-80gb"),
        (("estimate", "tickets", "--model", "acme/Nope-7B"), "error: unknown model 'acme/Nope-7B'"),
        # Every provider that prices per token is named.
        (
            ("estimate", "tickets", "--model", "gpt-5"),
            "no OpenAI / Azure OpenAI / Together AI prices for model 'gpt-5'; known:",
        ),
        (("estimate", "nope"), "error: no dataset 'nope'; known datasets: tickets"),
    ]:
        out = ftm(*args)
        assert out.returncode == 1, (args, out.stdout)
        assert expected in out.stderr and "Traceback" not in out.stderr


def test_prices_shows_catalog_age_sources_and_the_users_file(tmp_path):
    out = ftm("prices")
    assert out.returncode == 0, out.stderr
    assert "days old" in out.stdout and "2027-01-06" in out.stdout and "2027-01-14" in out.stdout
    assert "rtx-4090" in out.stdout and "runpod" in out.stdout
    user = tmp_path / "mine.toml"
    user.write_text(
        '[gpus.lab-a6000]\nname = "lab A6000"\ntflops_bf16 = 155\nmemory_gb = 48\n'
        "usd_per_hour = 0.45\n"
    )
    out = ftm("prices", "--json", env={"FTM_PRICES_FILE": str(user)})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["gpus"]["lab-a6000"]["usd_per_hour"] == 0.45
    assert data["files"][-1] == str(user)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[[")
    out = ftm("prices", env={"FTM_PRICES_FILE": str(bad)})
    assert out.returncode == 1 and "is not valid TOML" in out.stderr
