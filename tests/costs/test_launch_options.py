"""Local launch estimates resolve gradient checkpointing the way the local provider does."""

from __future__ import annotations

import pytest

from app.costs.errors import CostError
from app.costs.launch import local_config_from_options
from providers.local.hardware import gpus
from providers.local.options import resolve_hyperparameters
from providers.types import JobSpec

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.mark.parametrize("text", ["false", "False", "0", "no", False])
def test_the_text_false_means_false(text):
    cfg = local_config_from_options("lora", {"gradient_checkpointing": text}, hardware="l4")
    assert cfg.gradient_checkpointing is False


@pytest.mark.parametrize("text", ["true", "1", True])
def test_the_text_true_means_true(text):
    cfg = local_config_from_options("lora", {"gradient_checkpointing": text}, hardware="cpu")
    assert cfg.gradient_checkpointing is True


@pytest.mark.parametrize(("hardware", "expected"), [("l4", True), ("cpu", False)])
def test_auto_is_on_for_a_gpu_and_off_on_the_cpu(hardware, expected):
    for options in ({}, {"gradient_checkpointing": "auto"}):
        cfg = local_config_from_options("supervised", options, hardware=hardware)
        assert cfg.gradient_checkpointing is expected


def test_auto_on_this_machine_matches_the_local_provider():
    spec = JobSpec(name="x", base_model="", train_path="", method="lora")
    provider_says = resolve_hyperparameters(spec)["gradient_checkpointing"]
    assert provider_says is bool(gpus())
    assert local_config_from_options("lora", {}).gradient_checkpointing is provider_says


def test_a_device_cpu_option_turns_auto_off_even_for_a_gpu_estimate():
    cfg = local_config_from_options("lora", {"device": "cpu"}, hardware="l4")
    assert cfg.gradient_checkpointing is False


def test_a_bad_value_is_a_clear_cost_error():
    with pytest.raises(CostError, match="gradient_checkpointing='maybe'"):
        local_config_from_options("lora", {"gradient_checkpointing": "maybe"}, hardware="l4")
