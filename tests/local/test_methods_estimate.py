"""`ftm estimate --method dora|ia3|prefix`: each method's trainable parameters and the
memory they take, as the local provider's refusal counts them."""

from __future__ import annotations

import json

import pytest

from app.costs.local_memory import LocalTrainingConfig, estimate_memory
from app.costs.model_shapes import model_shape
from providers.local.memory import method_params
from tests.costs.conftest import chat_examples, make_dataset  # noqa: F401  (fixture)
from tests.costs.test_cli import ftm

MISTRAL = "mistralai/Mistral-7B-v0.3"


def test_each_method_trains_what_peft_creates_and_pays_its_optimizer_state():
    shape = model_shape(MISTRAL)
    L, kv, ffn = shape.num_hidden_layers, 8 * 128, shape.intermediate_size
    lora = estimate_memory(shape, LocalTrainingConfig(method="lora", rank=16))
    dora = estimate_memory(shape, LocalTrainingConfig(method="dora", rank=16))
    ia3 = estimate_memory(shape, LocalTrainingConfig(method="ia3"))
    prefix = estimate_memory(shape, LocalTrainingConfig(method="prefix", num_virtual_tokens=30))
    # DoRA: LoRA plus one magnitude per output feature of each adapted projection.
    outs = (4096 + kv + kv + 4096 + ffn + ffn + 4096) * L
    assert dora.trainable_params == lora.trainable_params + outs
    # IA3: a vector on k and v (outputs) and on down_proj (its input, the FFN width).
    assert ia3.trainable_params == (kv + kv + ffn) * L == 524_288
    # Prefix: virtual tokens x layers x (key, value) x KV width.
    assert prefix.trainable_params == 30 * L * 2 * kv
    for est in (dora, ia3, prefix):
        # fp32 weight + gradient + Adam's two moments per trained parameter; the base frozen
        assert est.trainable_state == est.trainable_params * 16
        assert est.weights == lora.weights
    assert ia3.total < lora.total < dora.total
    # Prefix tuning cannot checkpoint: its estimate keeps every layer's activations.
    checkpointed = estimate_memory(shape, LocalTrainingConfig(method="lora"))
    assert prefix.activations > 5 * checkpointed.activations


@pytest.mark.parametrize("method", ["prefix"])  # one run: the same wiring for all three
def test_estimate_cli_prices_the_method(make_dataset, method):  # noqa: F811
    make_dataset("tickets", chat_examples(50))
    out = ftm(
        "estimate", "tickets", "--provider", "local", "--model", MISTRAL,
        "--method", method, "--gpu", "a100-80gb", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (local,) = [o for o in json.loads(out.stdout)["options"] if o["kind"] == "local"]
    assert local["training"]["config"]["method"] == method
    memory = local["training"]["memory"]
    assert memory["trainable_params"] == method_params(model_shape(MISTRAL), method)
