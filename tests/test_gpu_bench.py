"""The GPU bench (bench/gpu_qlora_8b.py) and the GPU peak table it divides by.

- Peaks: real device names (as torch.cuda.get_device_name / nvidia-smi spell them) map to
  their own data-sheet peak, the most specific name winning; the cost catalog and the
  calibration's name patterns agree with the table (one truth, pinned here).
- The bench's CPU dry run (`--shape tiny`, the same code as on a GPU): each configuration's
  model is freed before the next loads; MFU and HFU use the cost estimator's FLOPs per
  token (no input embedding; HFU adds the checkpoint recompute); the default-vs-fastest
  line is printed.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import weakref
from dataclasses import replace
from pathlib import Path

import pytest

from app.costs.calibration import hardware_key
from app.costs.catalog import load_catalog
from providers.local.hardware import peak_flops

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it); all
# but test_cost_catalog_and_calibration_agree_with_the_peak_table, which reads one.
NO_DATABASE = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "gpu_qlora_8b.py"

# name as the driver reports it -> dense peak TFLOP/s in the format ftm trains in there
REAL_NAMES = {
    "NVIDIA H100 80GB HBM3": 989,  # SXM5
    "NVIDIA H100 PCIe": 756,
    "NVIDIA H100 NVL": 835,
    "NVIDIA H200": 989,
    "NVIDIA H200 NVL": 835,
    "NVIDIA GH200 480GB": 989,
    "NVIDIA A100-SXM4-80GB": 312,
    "NVIDIA A100-SXM4-40GB": 312,
    "NVIDIA A100 80GB PCIe": 312,
    "NVIDIA A100-PCIE-40GB": 312,
    "NVIDIA A10": 125,
    "NVIDIA L4": 121,
    "NVIDIA L40": 181,
    "NVIDIA L40S": 362,
    "NVIDIA GeForce RTX 4090": 165,
    "Tesla T4": 65,  # fp16: no bf16 there
    "Tesla V100-SXM2-16GB": 125,  # fp16: no bf16 there
    "Tesla V100-PCIE-32GB": 112,
    "Tesla V100S-PCIE-32GB": 130,
}


@NO_DATABASE
@pytest.mark.parametrize("name, tflops", REAL_NAMES.items())
def test_each_gpu_gets_its_own_peak(name: str, tflops: float) -> None:
    assert peak_flops(name) == tflops * 1e12
    assert peak_flops(name.lower()) == tflops * 1e12


@NO_DATABASE
def test_unknown_gpus_have_no_peak_rather_than_a_neighbours() -> None:
    # A10G (AWS) is not an A10, an RTX 4080 not a 4090: unknown, never guessed
    for name in ("NVIDIA A10G", "NVIDIA GeForce RTX 4080", "NVIDIA B200", "cpu"):
        assert peak_flops(name) is None, name


def test_cost_catalog_and_calibration_agree_with_the_peak_table() -> None:
    catalog = load_catalog()
    for key, gpu in catalog.gpus.items():
        if key == "cpu":
            continue
        # the catalog's own name reads back to its key and its peak
        assert hardware_key(gpu.name, catalog) == key, gpu.name
        assert peak_flops(gpu.name) == gpu.peak_flops, gpu.name
    for name in REAL_NAMES:
        key = hardware_key(name, catalog)
        if key in catalog.gpus:  # a sample measured on `name` is calibrated on `key`'s peak
            assert catalog.gpu(key).peak_flops == peak_flops(name), (name, key)
    # the variants whose peak differs from their family's are not filed under it
    assert hardware_key("NVIDIA H100 PCIe", catalog) != "h100"
    assert hardware_key("NVIDIA H100 NVL", catalog) != "h100"
    assert hardware_key("NVIDIA L40", catalog) not in ("l4", "l40s")


def _load_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@NO_DATABASE
@pytest.mark.slow
def test_each_configuration_is_freed_before_the_next_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """LoRA's peak memory must not include QLoRA's model: when the second configuration
    loads its model, every earlier model is gone (no collection of ours helps it)."""
    from providers.local import training

    bench = _load_bench()
    models: list[weakref.ref] = []
    alive_at_each_load: list[list[bool]] = []
    real_load = training.load_model

    def load_model(*args, **kwargs):
        alive_at_each_load.append([ref() is not None for ref in models])
        model = real_load(*args, **kwargs)
        models.append(weakref.ref(model))
        return model

    monkeypatch.setattr(training, "load_model", load_model)
    monkeypatch.setattr(
        sys, "argv", ["gpu_qlora_8b.py", "--shape", "tiny", "--steps", "2", "--seq-len", "64"]
    )
    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    # main() quiets the libraries for this process: put them back for the tests after us
    verbosity, threads = hf_logging.get_verbosity(), torch.get_num_threads()
    bars, hf_bars = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    gc.disable()  # only the bench's own release may free the models (as on a busy GPU run)
    try:
        assert bench.main() == 0
    finally:
        gc.enable()
        hf_logging.set_verbosity(verbosity)
        if hf_bars:
            hf_logging.enable_progress_bar()
        torch.set_num_threads(threads)
        if bars:
            datasets.enable_progress_bars()
    assert alive_at_each_load == [[], [False]]


def _estimator_flops(shape: dict, method: str, seq_len: int) -> tuple[float, float]:
    from app.costs.local_memory import LocalTrainingConfig
    from app.costs.local_time import flops_per_token
    from providers.local.model_shape import shape_from_config

    ms = shape_from_config(shape, "tiny", "test")
    cfg = LocalTrainingConfig(method=method, rank=16, seq_len=seq_len, micro_batch=1)
    model = flops_per_token(ms, replace(cfg, gradient_checkpointing=False), seq_len)
    hardware = flops_per_token(ms, replace(cfg, gradient_checkpointing=True), seq_len)
    return model, hardware


@NO_DATABASE
@pytest.mark.slow
def test_tiny_dry_run_reports_mfu_hfu_and_the_default_against_the_fastest(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results.json"
    peak_tflops = 0.001  # a peak near the CPU's rate: percentages with digits
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--shape",
            "tiny",
            "--steps",
            "2",
            "--seq-len",
            "64",
            "--peak-tflops",
            str(peak_tflops),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = proc.stdout
    data = json.loads(out.read_text())
    bench = _load_bench()
    shape = bench.SHAPES["tiny"]
    assert [(r["method"], r["liger"]) for r in data["results"]] == [
        ("qlora", False),
        ("lora", False),
    ]
    for r in data["results"]:
        model_fpt, hardware_fpt = _estimator_flops(shape, r["method"], 64)
        # N without the input embedding: the linear layers plus the output head
        assert r["n_matmul"] == _matmul(shape)
        assert r["model_flops_per_token"] == pytest.approx(model_fpt)
        assert r["hardware_flops_per_token"] == pytest.approx(hardware_fpt)
        assert hardware_fpt > model_fpt
        mfu = r["tokens_per_s"] * model_fpt / (peak_tflops * 1e12)
        hfu = r["tokens_per_s"] * hardware_fpt / (peak_tflops * 1e12)
        assert (r["mfu"], r["hfu"]) == (pytest.approx(mfu), pytest.approx(hfu))
        label = re.escape(r["method"]) + r":"
        line = next(ln for ln in text.splitlines() if re.match(r"\s*" + label, ln))
        assert f"MFU {mfu:6.1%}" in line and f"HFU {hfu:6.1%}" in line, line
    for method in ("qlora", "lora"):
        assert re.search(rf"^{method}: ftm default vs fastest selectable: 1\.00 ", text, re.M), text
    assert "qlora/lora throughput ratio:" in text


def _matmul(shape: dict) -> int:
    """Linear layers of the Llama blocks plus the output head (not the input embedding)."""
    d, ffn, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    head_dim = d // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * head_dim
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * ffn
    return per_layer * layers + shape["vocab_size"] * d


@NO_DATABASE
def test_default_against_fastest_and_which_liger_settings_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from providers.local import kernels

    bench = _load_bench()
    results = [
        dict(method="qlora", liger=False, tokens_per_s=1000.0),
        dict(method="qlora", liger=True, tokens_per_s=900.0),
        dict(method="lora", liger=False, tokens_per_s=1000.0),
        dict(method="lora", liger=True, tokens_per_s=1040.0),
    ]
    ratio, fastest = bench.default_vs_fastest(results, "qlora", True)
    assert (ratio, fastest["liger"]) == (pytest.approx(0.9), False)  # 10% behind: flagged
    ratio, fastest = bench.default_vs_fastest(results, "lora", True)
    assert (ratio, fastest["liger"]) == (1.0, True)

    monkeypatch.setattr(kernels, "liger_installed", lambda: True)
    assert bench.liger_choices("both", "cuda") == ([False, True], True)
    assert bench.liger_choices("auto", "cuda") == ([True], True)
    assert bench.liger_choices("off", "cuda") == ([False], True)
    assert bench.liger_choices("both", "cpu") == ([False], False)
    monkeypatch.setattr(kernels, "liger_installed", lambda: False)
    assert bench.liger_choices("both", "cuda") == ([False], False)
