"""The number formats of a local run, decided from the GPU's compute capability (not from
torch's ``is_bf16_supported``, which counts emulated bf16 on a T4 or V100), and the
trainer arguments, loading configs and adapter dtypes built from that decision.

GPUs come from the hardware seam (`tests.hardware_facts`); what needs CUDA to build is
checked as the arguments it would be built from.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from providers.errors import SpecRejected
from providers.local import LocalProvider, demo_data, hardware
from providers.local.options import resolve_hyperparameters
from providers.local.precision import PrecisionError, precision_for_gpus
from providers.local.training import base_loading, common_args, loading_kwargs, process_precision
from providers.types import JobSpec
from tests.hardware_facts import fake_gpus, gpu_fact

# preset: (mixed, compute dtype, tf32) that bf16=auto must pick
AUTO = {
    "t4": ("fp16", "float16", False),
    "v100": ("fp16", "float16", False),
    "a100": ("bf16", "bfloat16", True),
    "h100": ("bf16", "bfloat16", True),
    "l4": ("bf16", "bfloat16", True),
}


def _hp(method: str = "lora", **options) -> dict:
    spec = JobSpec(name="t", base_model="m", train_path="t.jsonl", method=method, options=options)
    return resolve_hyperparameters(spec)


@pytest.mark.parametrize("preset", sorted(AUTO))
def test_auto_picks_bf16_only_from_compute_capability_8(preset, monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact(preset, 0)])
    p = precision_for_gpus("auto", hardware.gpus())
    mixed, compute, tf32 = AUTO[preset]
    assert (p.mixed, p.compute_dtype, p.frozen_dtype, p.tf32) == (mixed, compute, compute, tf32)
    assert p.trainable_dtype == "float32"  # adapters and master weights: always fp32
    assert hardware.gpus()[0].name in p.reason


def test_bf16_false_is_a_coherent_fp16_run_on_a_gpu_and_fp32_on_the_cpu(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("h100", 0)])
    p = precision_for_gpus("false", hardware.gpus())
    assert (p.mixed, p.compute_dtype, p.frozen_dtype, p.tf32) == (
        "fp16",
        "float16",
        "float16",
        True,
    )
    cpu = precision_for_gpus("false", [])
    assert (cpu.mixed, cpu.compute_dtype, cpu.frozen_dtype) == ("no", "float32", "float32")


def test_a_machine_of_mixed_gpus_trains_in_what_the_weakest_has(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("a100", 0), gpu_fact("t4", 1)])
    assert precision_for_gpus("auto", hardware.gpus()).mixed == "fp16"
    with pytest.raises(PrecisionError, match="Tesla T4"):
        precision_for_gpus("true", hardware.gpus())


@pytest.mark.parametrize("preset", sorted(AUTO))
def test_training_arguments_follow_the_decision(preset, monkeypatch, tmp_path):
    from trl import DPOConfig, SFTConfig

    fake_gpus(monkeypatch, tmp_path, [gpu_fact(preset, 0)])
    p = precision_for_gpus("auto", hardware.gpus())
    args, _ = common_args(_hp(), tmp_path, 64, False, "cuda", p)
    mixed, _, tf32 = AUTO[preset]
    assert (args["bf16"], args["fp16"]) == (mixed == "bf16", mixed == "fp16")
    assert args["tf32"] is (True if tf32 else None)  # never False: that switches TF32 off
    if mixed == "fp16":
        # fp16 builds without CUDA: the real configs say fp16 autocast (GradScaler)
        for cls in (SFTConfig, DPOConfig):
            built = cls(**args)
            assert (built.fp16, built.bf16, built.mixed_precision) == (True, False, "fp16")


def test_bf16_false_on_a_bf16_gpu_gives_fp16_autocast_not_fp32(monkeypatch, tmp_path):
    # The first build trained bf16=false in fp32 with no autocast on every GPU.
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("a100", 0)])
    p = precision_for_gpus("false", hardware.gpus())
    args, _ = common_args(_hp(bf16="false"), tmp_path, 64, False, "cuda", p)
    assert (args["fp16"], args["bf16"], args["tf32"]) == (True, False, True)


def test_the_cpu_trains_in_fp32_without_autocast_or_tf32(tmp_path):
    from trl import SFTConfig

    p = precision_for_gpus("auto", [])
    args, _ = common_args(_hp(), tmp_path, 64, False, "cpu", p)
    built = SFTConfig(**args)
    assert (built.fp16, built.bf16, built.tf32, built.mixed_precision) == (
        False,
        False,
        None,
        "no",
    )


@pytest.mark.parametrize("preset", ["t4", "v100", "a100"])
def test_base_loading_uses_the_compute_dtype(preset, monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact(preset, 0)])
    p = precision_for_gpus("auto", hardware.gpus())
    dtype = getattr(torch, AUTO[preset][1])
    qlora = loading_kwargs(base_loading("qlora", p), "cuda")
    bnb = qlora["quantization_config"]
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == dtype
    assert qlora["dtype"] == dtype  # embeddings and norms: not left in a bf16 checkpoint's dtype
    assert qlora["device_map"] == {"": 0}  # quantized on the way to its GPU
    lora = loading_kwargs(base_loading("lora", p), "cuda")
    assert lora == {"dtype": dtype}  # the Trainer places it
    assert loading_kwargs(base_loading("full", p), "cuda") == {"dtype": torch.float32}


def _t4_as_torch_sees_it(monkeypatch) -> None:
    """torch's answers on a T4: capability 7.5, and is_bf16_supported() True (emulated)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_the_worker_decides_from_its_devices_capability_not_emulated_bf16(monkeypatch):
    _t4_as_torch_sees_it(monkeypatch)
    p = process_precision({"bf16": "auto"}, "cuda")
    assert (p.mixed, p.compute_dtype) == ("fp16", "float16")
    with pytest.raises(PrecisionError, match=r"bf16=true: Tesla T4 \(compute capability 7.5\)"):
        process_precision({"bf16": "true"}, "cuda")


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    config = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        vocab_size=256,
        tie_word_embeddings=False,
    )
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_the_cli_refuses_bf16_true_on_a_gpu_without_native_bf16(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("t4", 0)])
    train = demo_data.write_jsonl(tmp_path / "train.jsonl", demo_data.labelling_examples(8))
    spec = JobSpec(
        name="t",
        base_model=str(_model_dir(tmp_path)),
        train_path=str(train),
        method="lora",
        ftm_job_uid="u1",
        options={"bf16": "true"},
    )
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url="")
    problems = provider.validate_spec(spec)
    assert any("option bf16=true: Tesla T4 (compute capability 7.5)" in p for p in problems)
    with pytest.raises(SpecRejected) as info:
        provider.create(spec)
    assert info.value.param == "bf16"
    assert "set bf16=auto" in info.value.message  # what to do
    assert not (tmp_path / "jobs" / "u1" / "config.json").exists()  # nothing started
    # auto on the same GPU is accepted (fp16)
    assert provider.validate_spec(replace(spec, options={})) == []


def test_a_cpu_qlora_trainer_keeps_fp32_adapters_after_trl_casts_them_to_bf16(tiny_model, tmp_path):
    # trl 1.16 casts a quantized model's trainable parameters to bf16; on an fp32 (or fp16)
    # run they must stay fp32.
    from providers.local.training import build_trainer

    train = demo_data.write_jsonl(tmp_path / "train.jsonl", demo_data.labelling_examples(8))
    spec = JobSpec(
        name="t",
        base_model=str(tiny_model),
        train_path=str(train),
        method="qlora",
        options={"device": "cpu", "torch_threads": 1},
    )
    config = dict(
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=None,
        output_dir=str(tmp_path / "out"),
        hp=resolve_hyperparameters(spec),
    )
    trainer, plan = build_trainer(config, [])
    assert plan.quantized and plan.precision.mixed == "no"
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}
    embed = trainer.model.get_input_embeddings().weight
    assert embed.dtype == torch.float32  # unquantized parts in the compute dtype


def test_full_dpo_gets_its_reference_model_in_the_compute_dtype(tiny_model, tmp_path):
    # What the memory estimate counts: a second copy in the compute dtype (trl's own would
    # copy the fp32 master weights).
    from providers.local.training import build_trainer, load_reference

    prefs = demo_data.write_jsonl(tmp_path / "p.jsonl", demo_data.preference_examples(4))
    spec = JobSpec(
        name="t",
        base_model=str(tiny_model),
        train_path=str(prefs),
        method="dpo",
        options={"device": "cpu", "torch_threads": 1, "dpo_tuning": "full"},
    )
    config = dict(
        base_model=str(tiny_model),
        train_path=str(prefs),
        validation_path=None,
        output_dir=str(tmp_path / "out"),
        hp=resolve_hyperparameters(spec),
    )
    trainer, plan = build_trainer(config, [])
    ref = trainer.accelerator.unwrap_model(trainer.ref_model)
    assert ref is not trainer.model and not any(p.requires_grad for p in ref.parameters())
    assert ref.dtype == torch.float32 == getattr(torch, plan.precision.compute_dtype)
    h100 = precision_for_gpus("auto", [hardware.Gpu("H100", 80 * 2**30, capability=(9, 0))])
    assert load_reference(str(tiny_model), h100, "cpu").dtype == torch.bfloat16
