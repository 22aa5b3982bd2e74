"""The training-memory estimate's terms, computed by hand: the dtypes the run actually
uses (`providers.local.precision`), DPO's doubled rows and full DPO's reference model,
DDP's gradient buckets; and the refusal and the launch estimate agreeing on them."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from app.costs.launch import estimate_for_launch, local_config_from_options
from app.costs.local_memory import estimate_memory
from providers.errors import SpecRejected
from providers.local import LocalProvider, demo_data
from providers.local.memory import TrainingSetup, estimate_training_memory
from providers.local.model_shape import shape_from_config
from providers.local.precision import Precision, choose_precision
from providers.types import JobSpec
from tests.costs.conftest import chat_examples

CONFIG = dict(
    hidden_size=1024,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=8,
    intermediate_size=4096,
    vocab_size=32000,
    tie_word_embeddings=False,
)
SHAPE = shape_from_config(CONFIG, "m", "test")
# By hand: per layer 4 x 1024² (attention) + 3 x 1024 x 4096 (MLP) = 16,777,216; x 4 layers
# = 67,108,864; embeddings and head 2 x 32000 x 1024 = 65,536,000.
N = 132_644_864
# LoRA r=16 on all linear layers: 4 x 16 x 2048 + 3 x 16 x 5120 = 376,832 per layer, x 4.
N_LORA = 1_507_328
T4 = choose_precision("auto", "cuda", (7, 5), "Tesla T4")
H100 = choose_precision("auto", "cuda", (9, 0), "H100")
CPU = choose_precision("auto", "cpu", None)
BASE = TrainingSetup(method="lora", seq_len=512, micro_batch=2, gradient_checkpointing=True)
# b=2, s=512, d=1024, L=4 under checkpointing: layer inputs (bytes x b·s·d·L) plus one
# layer recomputed (b·s·d·34, Korthikanti's bf16 count, scaled by bytes / 2).
ACT_16 = 2 * 2 * 512 * 1024 * 4 + 2 * 512 * 1024 * 34  # 44,040,192
ACT_32 = 4 * 2 * 512 * 1024 * 4 + 2 * 512 * 1024 * 34 * 2  # 88,080,384
LOGITS_16 = 2 * 512 * 32000 * 10  # compute-dtype logits + fp32 upcast + fp32 gradient
LOGITS_32 = 2 * 512 * 32000 * 12


def est(**change):
    return estimate_training_memory(SHAPE, replace(BASE, **change))


def test_the_shape_is_what_the_hand_computation_says():
    assert (SHAPE.params, SHAPE.lora_params(16, BASE.targets)) == (N, N_LORA)


def test_frozen_lora_weights_follow_the_frozen_dtype():
    assert est(precision=T4).weights == 2 * N  # fp16 on a T4
    assert est(precision=H100).weights == 2 * N
    assert est(device="cpu", precision=CPU).weights == 4 * N
    assert est(device="cpu").weights == 4 * N  # the CPU's own default: fp32
    # The dtype decides, not the device: an fp32 run on a GPU (no choice of ftm's today).
    fp32_gpu = Precision("no", "float32", "float32", False, "fp32 run")
    assert est(precision=fp32_gpu).weights == 4 * N


def test_fp32_runs_keep_activations_and_logits_in_4_bytes():
    gpu, cpu = est(precision=H100), est(device="cpu", precision=CPU)
    assert (gpu.activations, gpu.logits) == (ACT_16, LOGITS_16)
    assert (cpu.activations, cpu.logits) == (ACT_32, LOGITS_32)


def test_full_fine_tuning_keeps_fp32_master_weights_under_fp16_autocast():
    m = est(method="full", precision=T4)
    assert m.weights == 4 * N
    assert m.trainable_state == N * (4 + 8)  # fp32 gradient + Adam m, v
    assert est(method="qlora", precision=T4).weights == round(
        SHAPE.linear_params * 0.516 + 2 * SHAPE.embedding_params
    )
    # QLoRA on the CPU: the unquantized embeddings and head in fp32
    assert est(method="qlora", device="cpu").weights == round(
        SHAPE.linear_params * 0.516 + 4 * SHAPE.embedding_params
    )


def test_dpo_runs_chosen_and_rejected_rows_together():
    m = est(precision=H100, dpo=True)
    assert (m.activations, m.logits) == (2 * ACT_16, 2 * LOGITS_16)
    assert m.reference_model == 0  # LoRA DPO disables the adapters: no copy


def test_full_dpo_keeps_a_reference_model_in_the_compute_dtype():
    gpu = est(method="full", precision=H100, dpo=True)
    assert gpu.reference_model == 2 * N
    cpu = est(method="full", device="cpu", dpo=True)
    assert cpu.reference_model == 4 * N
    assert cpu.total - est(method="full", device="cpu").total == (
        4 * N  # the reference model
        + ACT_32  # twice the rows: one more batch of activations
        + LOGITS_32  # ... and of logits
        + round(0.2 * (ACT_32 + LOGITS_32))  # with their fragmentation
    )
    assert "reference model 0.5" in cpu.describe()


def test_ddp_keeps_a_bucketed_copy_of_the_trainable_gradients():
    assert est(precision=H100).ddp_buckets == 0
    lora = est(precision=H100, world_size=2)
    assert lora.ddp_buckets == 4 * N_LORA  # fp32 adapter gradients
    assert lora.total == est(precision=H100).total + 4 * N_LORA
    assert est(method="full", precision=H100, world_size=4).ddp_buckets == 4 * N
    assert "DDP buckets" in lora.describe()
    assert "DDP buckets" not in est(precision=H100).describe()


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    return d


def test_the_refusal_and_the_launch_estimate_count_dpo_and_ddp_alike(tmp_path, make_dataset):
    ds = make_dataset("tickets", chat_examples(40))
    base = _model_dir(tmp_path)
    options = {"device": "cpu", "dpo_tuning": "full", "n_gpus": 2, "max_seq_len": 512}
    prefs = demo_data.write_jsonl(tmp_path / "prefs.jsonl", demo_data.preference_examples(8))
    spec = JobSpec(
        name="t",
        base_model=str(base),
        train_path=str(prefs),
        method="dpo",
        ftm_job_uid="u1",
        options=options,
    )
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    line = provider.memory_check(spec)
    # two CPU processes: each holds this figure, both in the same RAM
    figure = re.search(r"estimated (.+?\)) per process x 2 processes", line).group(1)
    assert "reference model" in figure and "DDP buckets" in figure

    launch = estimate_for_launch(
        dataset_id=ds.id,
        provider="local",
        base_model=str(base),
        method="dpo",
        options=options,
        gpu="cpu",
    )
    cfg = local_config_from_options("dpo", options, hardware="cpu")
    assert cfg.dpo and cfg.n_gpu == 2
    expected = estimate_memory(SHAPE, cfg, device="cpu")
    assert expected.describe() == figure
    assert launch.peak_memory_bytes == expected.total

    # ... and the refusal (with skip off) prints that same figure.
    from providers.local import hardware

    with pytest.MonkeyPatch.context() as mp:
        # a machine with one byte too few for two replicas: the real estimate against it
        mp.setattr(hardware, "available_ram_bytes", lambda: 2 * expected.total - 1)
        with pytest.raises(SpecRejected) as info:
            provider.create(spec)
    assert f"estimated {figure} per process x 2 processes" in info.value.message
