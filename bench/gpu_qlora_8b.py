"""QLoRA and LoRA on an 8B-shaped Llama, with and without Liger kernels: tokens/s, MFU and
HFU, peak memory vs the estimate, and how far ftm's default is from the fastest choice.

Needs a CUDA GPU for the 8B shape (exits with a message otherwise). Nothing is downloaded:
the model is a random-init Llama with Llama-3.1-8B's shape (config only), saved once to a
temporary directory and loaded through the local provider's own code
(`providers.local.training.load_model` and `common_args`: NF4 + double quantization for
QLoRA, 16-bit frozen weights for LoRA, LoRA r=16 on all linear layers, gradient
checkpointing), trained by trl's SFTTrainer on random full-length token rows. The number
formats come from `providers.local.precision.choose_precision` with the GPU's compute
capability (bf16 from 8.0, fp16 below it).

Each configuration (method x Liger off/on; Liger only where it can run: CUDA and the
liger-kernel package) runs in turn, and its model, trainer and optimizer are released
(accelerate's references, a garbage collection, the CUDA cache, the peak counters) before
the next loads, so each peak is its own. Reported per configuration:
- tokens/s: steady state (first steps excluded), CUDA-synchronised step times.
- MFU: tokens/s x model FLOPs per token (no checkpoint recompute) / the GPU's peak;
  HFU: the same with the recompute's extra forward (hardware FLOPs). FLOPs per token are
  the cost estimator's (`app.costs.local_time.flops_per_token`: N = the linear layers and
  the output head, not the input embedding lookup) for this very shape and job.
- peak memory (torch.cuda.max_memory_allocated / reserved) against
  `providers.local.memory`'s estimate for this job.
- per method: "ftm default vs fastest selectable": tokens/s of what ftm picks by itself
  (liger_kernel=auto) over the fastest configuration it could be told to use; flagged
  when more than 5% behind. Target (issue 12): MFU >= 35% for QLoRA 8B on an H100/H200.
Reference (published single-GPU runs): one RTX 4090, packed 2048: LoRA ~3,100 tok/s,
QLoRA ~2,400.

    .venv/bin/python bench/gpu_qlora_8b.py [--seq-len 2048] [--batch-size 1] [--steps 12]
        [--liger auto|off|both] [--json results.json]
    .venv/bin/python bench/gpu_qlora_8b.py --shape tiny   # the same code on a tiny shape,
                                                          # runs on the CPU (a dry run)
    bash bench/gpu_device.sh                              # on a lent GPU machine
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    "8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    ),
    "tiny": dict(
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    ),
}


def build_random_model(shape: dict, out: Path, device: str) -> Path:
    """Random-init Llama of ``shape`` saved to ``out`` (bf16 on a GPU), plus a tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from providers.local.tiny_model import build_tokenizer

    config = LlamaConfig(**shape, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        torch.set_default_dtype(dtype)
        model = LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    # Only its pad id is used: the data below is already token ids.
    build_tokenizer(["random token data"], vocab_size=300).save_pretrained(out)
    return out


class StepTimer:
    """Times each optimizer step (CUDA-synchronised) to get a steady-state rate."""

    def __new__(cls, device: str):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self.t = 0.0

            def _sync(self) -> None:
                if device == "cuda":
                    import torch

                    torch.cuda.synchronize()

            def on_step_begin(self, args, state, control, **kw):
                self._sync()
                self.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self._sync()
                self.times.append(time.perf_counter() - self.t)

        return _Timer()


def release_memory() -> None:
    """Collect what a finished configuration left and reset the CUDA peak counters, so
    the next configuration's peak memory is its own. Called once nothing references the
    trainer any more: trainer, accelerator, callbacks and PEFT wrapper reference each
    other, so a plain ``del`` leaves the model alive until some later garbage collection."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def estimator_flops(ms, tuning: str, hp: dict, seq_len: int) -> tuple[float, float]:
    """(model, hardware) training FLOPs per token of this job, by the cost estimator's own
    formula: model FLOPs without the checkpoint recompute, hardware FLOPs with it."""
    from app.costs.local_memory import LocalTrainingConfig, resolve_targets
    from app.costs.local_time import flops_per_token

    targets = None if hp["target_modules"] == "all-linear" else hp["target_modules"]
    cfg = LocalTrainingConfig(
        method=tuning,
        rank=hp["r"],
        targets=resolve_targets(targets),
        seq_len=seq_len,
        micro_batch=hp["batch_size"],
        gradient_checkpointing=False,
    )
    model = flops_per_token(ms, cfg, seq_len)
    hardware = flops_per_token(ms, replace(cfg, gradient_checkpointing=True), seq_len)
    return model, hardware


def run_config(
    tuning: str, liger: bool, model_dir: Path, shape: dict, args, device: str, precision, work: Path
) -> dict:
    """Train one configuration for ``args.steps`` steps; its measurements (no references
    to the model or trainer survive the call)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from app.costs.local_time import matmul_params
    from providers.local import training
    from providers.local.memory import estimate_training_memory
    from providers.local.model_shape import shape_from_config
    from providers.local.options import resolve_hyperparameters
    from providers.local.provider import training_setup
    from providers.types import JobSpec

    spec = JobSpec(
        name="bench",
        base_model=str(model_dir),
        train_path="-",
        method=tuning,
        ftm_job_uid="bench",
        options={
            "batch_size": args.batch_size,
            "max_seq_len": args.seq_len,
            "gradient_checkpointing": True,
            "epochs": 1,
            "logging_steps": 1,
            "liger_kernel": "true" if liger else "false",
            "device": device,
        },
    )
    hp = resolve_hyperparameters(spec)
    release_memory()  # the peak counters start here (the random model's build is not ours)
    g = torch.Generator().manual_seed(0)
    n_rows = args.batch_size * args.steps
    rows = [
        {"input_ids": torch.randint(3, shape["vocab_size"], (args.seq_len,), generator=g).tolist()}
        for _ in range(n_rows)
    ]
    targs, _ = training.common_args(hp, work / tuning, n_rows, False, device, precision)
    targs.update(save_strategy="no", max_steps=args.steps, logging_steps=max(1, args.steps))
    model = training.load_model(str(model_dir), tuning, device, precision)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**targs, max_length=args.seq_len, packing=False),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=training.lora_config(hp),
    )
    del model  # the trainer holds it, and is freed at the end
    training.keep_trainable_dtype(trainer.model, precision)  # trl casts QLoRA adapters to bf16
    timer = StepTimer(device)
    trainer.add_callback(timer)
    trainer.train()
    steady = timer.times[2:] if len(timer.times) > 4 else timer.times
    step_s = sum(steady) / len(steady)
    tps = args.batch_size * args.seq_len / step_s
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    ms = shape_from_config(shape, f"bench-{args.shape}", "bench shape")
    model_fpt, hardware_fpt = estimator_flops(ms, tuning, hp, args.seq_len)
    # The estimate the provider refuses with, for exactly this job's options.
    est = estimate_training_memory(ms, training_setup(hp, device=device, precision=precision))
    out = dict(
        method=tuning,
        liger=liger,
        tokens_per_s=tps,
        step_s=step_s,
        model_flops_per_token=model_fpt,
        hardware_flops_per_token=hardware_fpt,
        n_matmul=matmul_params(ms),
        n_trainable=n_trainable,
        estimate_bytes=est.total,
        estimate=est.describe(),
    )
    if device == "cuda":
        out["peak_allocated"] = torch.cuda.max_memory_allocated()
        out["peak_reserved"] = torch.cuda.max_memory_reserved()
    # The Accelerator keeps the prepared model and optimizer in lists of its own.
    trainer.accelerator.free_memory()
    del trainer, timer
    release_memory()
    return out


def refuse_if_liger_patched() -> None:
    """A Liger-off measurement must not run Liger's kernels (see `main`)."""
    from transformers.models.llama import modeling_llama

    if modeling_llama.LlamaRMSNorm.__module__.startswith("liger_kernel"):
        raise RuntimeError(
            "transformers' Llama classes are already patched by Liger in this process: a "
            "Liger-off configuration would measure Liger's kernels"
        )


def liger_choices(setting: str, device: str) -> tuple[list[bool], bool]:
    """(the Liger settings to run, what ftm's default picks) on ``device``."""
    from providers.local.kernels import use_liger_kernel

    default = use_liger_kernel("auto", device)
    if setting == "off" or not default:
        return [False], default
    if setting == "auto":
        return [default], default
    return [False, True], default


def default_vs_fastest(results: list[dict], method: str, default_liger: bool) -> tuple[float, dict]:
    """tokens/s of ftm's default configuration of ``method`` over the fastest it ran."""
    mine = [r for r in results if r["method"] == method]
    fastest = max(mine, key=lambda r: r["tokens_per_s"])
    default = next((r for r in mine if r["liger"] == default_liger), fastest)
    return default["tokens_per_s"] / fastest["tokens_per_s"], fastest


def report(r: dict, peak: float | None) -> None:
    GIB = 2**30
    achieved = r["tokens_per_s"] * r["model_flops_per_token"]
    if peak:
        r["mfu"] = achieved / peak
        r["hfu"] = r["tokens_per_s"] * r["hardware_flops_per_token"] / peak
        util = f"MFU {r['mfu']:6.1%}  HFU {r['hfu']:6.1%}"
    else:
        util = "MFU    n/a  HFU    n/a (unknown peak: pass --peak-tflops)"
    mem = ""
    if "peak_allocated" in r:
        mem = (
            f"  peak {r['peak_allocated'] / GIB:5.1f} GiB allocated / "
            f"{r['peak_reserved'] / GIB:5.1f} reserved vs estimate "
            f"{r['estimate_bytes'] / GIB:5.1f} GiB "
            f"(ratio {r['peak_reserved'] / r['estimate_bytes']:.2f})"
        )
    label = f"{r['method']}{' +liger' if r['liger'] else ''}"
    print(
        f"{label:>13}: {r['tokens_per_s']:9,.0f} tok/s  {achieved / 1e12:7.3g} model TFLOP/s  "
        f"{util}{mem}",
        flush=True,
    )
    print(
        f"               FLOPs/token: model {r['model_flops_per_token']:.4g}, hardware "
        f"{r['hardware_flops_per_token']:.4g} (N = {r['n_matmul']:,} matmul params, no input "
        f"embedding); {r['n_trainable']:,} trainable; estimate: {r['estimate']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--methods", default="qlora,lora")
    ap.add_argument(
        "--liger",
        choices=("auto", "off", "both"),
        default="both",
        help="both: each method with Liger off and on (where it can run); auto: ftm's "
        "default only; off: never",
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense peak of the device (TFLOP/s) when its name is not in the table",
    )
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument(
        "--workdir",
        default=None,
        help="where the random model is written (8B: about 16 GB of disk)",
    )
    args = ap.parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()

    from providers.local.hardware import peak_flops
    from providers.local.precision import choose_precision

    cuda = torch.cuda.is_available()
    if args.shape == "8b" and not cuda:
        print(
            "no CUDA GPU found: bench/gpu_qlora_8b.py needs one for the 8B shape "
            "(run it on a GPU machine; `--shape tiny` runs the same code on the CPU)"
        )
        return 2
    device = "cuda" if cuda else "cpu"
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    capability = torch.cuda.get_device_capability(0) if cuda else None
    precision = choose_precision("auto", device, capability, gpu)
    if not cuda:
        torch.set_num_threads(2)
        args.seq_len = min(args.seq_len, 256)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_flops(gpu) if cuda else None)
    ligers, default_liger = liger_choices(args.liger, device)
    shape = SHAPES[args.shape]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    work = Path(tempfile.mkdtemp(prefix="ftm-bench-8b-", dir=args.workdir))
    results: list[dict] = []
    try:
        t0 = time.monotonic()
        model_dir = build_random_model(shape, work / "model", device)
        print(
            f"device: {gpu}; peak {f'{peak / 1e12:g} TFLOP/s' if peak else 'unknown'}; "
            f"{precision.reason}; shape {args.shape}; seq {args.seq_len} x batch "
            f"{args.batch_size}; {args.steps} steps per configuration; Liger "
            f"{'on/off' if len(ligers) > 1 else ('on' if ligers[0] else 'off')} (ftm default: "
            f"{'on' if default_liger else 'off'}); random model written in "
            f"{time.monotonic() - t0:.0f}s",
            flush=True,
        )
        # Liger off first: Liger patches transformers' Llama classes for the whole
        # process (`apply_liger_kernel_to_llama` replaces modeling_llama's RMSNorm, MLP and
        # rotary function), so every model loaded after a Liger run would use its kernels.
        for liger in ligers:
            for method in methods:
                if not liger:
                    refuse_if_liger_patched()
                r = run_config(method, liger, model_dir, shape, args, device, precision, work)
                results.append(r)
                report(r, peak)
        for method in methods:
            ratio, fastest = default_vs_fastest(results, method, default_liger)
            flag = "  BEHIND BY MORE THAN 5%" if ratio < 0.95 else ""
            print(
                f"{method}: ftm default vs fastest selectable: {ratio:.2f} (default Liger "
                f"{'on' if default_liger else 'off'}; fastest Liger "
                f"{'on' if fastest['liger'] else 'off'}){flag}",
                flush=True,
            )
        by = {(r["method"], r["liger"]): r for r in results}
        for liger in ligers:
            q, lo = by.get(("qlora", liger)), by.get(("lora", liger))
            if q and lo:
                print(
                    f"qlora/lora throughput ratio{' (liger)' if liger else ''}: "
                    f"{q['tokens_per_s'] / lo['tokens_per_s']:.2f} (published: QLoRA "
                    "~0.75-0.85x LoRA)",
                    flush=True,
                )
        q = by.get(("qlora", default_liger))
        if args.shape == "8b" and q and "mfu" in q:
            verdict = "met" if q["mfu"] >= 0.35 else "NOT MET"
            print(f"target MFU >= 35% for QLoRA 8B (ftm default): {q['mfu']:.1%} {verdict}")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    dict(
                        device=gpu,
                        capability=capability,
                        peak_flops=peak,
                        precision=precision.mixed,
                        seq_len=args.seq_len,
                        batch_size=args.batch_size,
                        shape=args.shape,
                        default_liger=default_liger,
                        results=results,
                    ),
                    indent=1,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
