"""Local training: memory against published figures, FLOPs and tokens hand-computed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.costs.errors import CostError, UnknownModel
from app.costs.local_memory import LocalTrainingConfig, estimate_memory
from app.costs.local_time import flops_per_token, training_seconds, training_tokens
from app.costs.model_shapes import ALL_LINEAR, model_shape

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

# The settings every published figure below is compared under: sequence length 1024,
# micro-batch 1, packing, gradient checkpointing on, flash/SDPA attention, LoRA rank 16 on
# all linear projections, AdamW with fp32 states, double quantization for QLoRA, a 0.5 GB
# CUDA context and 20% fragmentation on activations and logits.
SETTINGS = dict(seq_len=1024, micro_batch=1, packing=True, gradient_checkpointing=True, rank=16)

# (model, method, published low GB, published high GB): community-measured peaks.
PUBLISHED = [
    ("meta-llama/Llama-2-7b-hf", "qlora", 6, 6),  # QLoRA 7-8B ~ 6 GB
    ("mistralai/Mistral-7B-v0.1", "qlora", 6, 6),
    ("meta-llama/Llama-2-7b-hf", "lora", 16, 22),  # LoRA 7-8B ~ 16-22 GB
    ("meta-llama/Llama-3.1-8B", "lora", 16, 22),
    ("meta-llama/Llama-2-7b-hf", "full", 120, 120),  # full, mixed-precision AdamW ~ 120 GB
    ("meta-llama/Llama-2-13b-hf", "qlora", 10, 12),  # QLoRA 13B ~ 10-12 GB
    ("meta-llama/Llama-3.1-70B", "qlora", 45, 48),  # QLoRA 70B budget 45-48 GB
]


@pytest.mark.parametrize(("model", "method", "low", "high"), PUBLISHED)
def test_memory_within_20_percent_of_published_figures(model, method, low, high):
    m = estimate_memory(model_shape(model), LocalTrainingConfig(method=method, **SETTINGS))
    gb = m.total / 1e9
    assert low * 0.8 <= gb <= high * 1.2, f"{model} {method}: {gb:.1f} GB vs {low}-{high}"


def test_qlora_70b_weights_alone_match_the_published_39_5_gb():
    m = estimate_memory(model_shape("meta-llama/Llama-3.1-70B"), LocalTrainingConfig(**SETTINGS))
    assert m.weights / 1e9 == pytest.approx(39.5, rel=0.02)


def test_parameter_counts_from_the_shape():
    s = model_shape("meta-llama/Llama-3.1-8B")
    assert s.params == pytest.approx(8.03e9, rel=0.005)
    # Rank 16 on all linear layers: 32 layers x 16 x sum(d_in + d_out) = 41,943,040.
    assert s.lora_params(16, ALL_LINEAR) == 32 * 16 * (
        (4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3
    )
    assert model_shape("meta-llama/Llama-2-13b-hf").params == pytest.approx(13.0e9, rel=0.01)
    assert model_shape("Llama-3.1-70B").params == pytest.approx(70.6e9, rel=0.01)


def test_shape_from_a_local_config_json(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 512,
                "tie_word_embeddings": True,
            }
        )
    )
    s = model_shape(tmp_path)
    # q, o: 64x64; k, v: 64x32; gate, up, down: 64x128. Embedding tied: 512 x 64 once.
    per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128
    assert s.linear_params == 2 * per_layer and s.embedding_params == 512 * 64
    assert str(tmp_path) in s.source


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UnknownModel) as e:
        model_shape("acme/SuperLM-9000")
    assert "meta-llama/Llama-3.1-8B" in str(e.value) and "config.json" in str(e.value)


def test_bad_config_values_are_clear_errors():
    with pytest.raises(CostError, match="unknown method"):
        LocalTrainingConfig(method="vera")
    with pytest.raises(CostError, match="seq_len must be at least 1"):
        LocalTrainingConfig(seq_len=0)


def test_training_tokens_packed_and_padded():
    counts = np.array([10, 30, 20, 2000, 5], dtype=np.uint32)
    cfg = LocalTrainingConfig(seq_len=1024, micro_batch=2, packing=False, epochs=2)
    t = training_tokens(counts, cfg)
    assert t.real == 10 + 30 + 20 + 1024 + 5
    # Batches (10, 30), (20, 1024), (5, pad): padded to 30, 1024, 5, two rows each.
    assert t.padded == 2 * (30 + 1024 + 5)
    assert t.trained == 2 * t.padded and t.longest == 1024
    packed = training_tokens(counts, LocalTrainingConfig(seq_len=1024, packing=True, epochs=2))
    assert packed.trained == 2 * t.real and packed.mean_context == 1024


def test_flops_per_token_hand_computed():
    s = model_shape("meta-llama/Llama-3.1-8B")
    n = s.linear_params + s.vocab_size * s.hidden_size  # matmul parameters
    attn = 32 * 4096 * 1000
    lora = LocalTrainingConfig(method="lora", gradient_checkpointing=False)
    assert flops_per_token(s, lora, 1000) == 4 * n + 12 * attn + 6 * s.lora_params(16, ALL_LINEAR)
    full = LocalTrainingConfig(method="full", gradient_checkpointing=True)
    assert flops_per_token(s, full, 1000) == 6 * n + 12 * attn + 2 * n + 4 * attn
    # 1M tokens x 1e10 FLOPs on one 989 TFLOP/s GPU at MFU 0.3, +20% for QLoRA.
    assert training_seconds(
        10**6, 1e10, peak_flops=989e12, mfu=0.3, n_gpu=1, dequant_overhead=0.2
    ) == pytest.approx(1e16 / (989e12 * 0.3) * 1.2)
