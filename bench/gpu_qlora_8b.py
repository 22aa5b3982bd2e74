"""QLoRA and LoRA on an 8B-shaped Llama: tokens/s, MFU and peak memory vs the estimate.

Needs a CUDA GPU (exits with a message otherwise). Nothing is downloaded: the model is a
random-init Llama with Llama-3.1-8B's shape (config only), saved once to a temporary
directory and loaded through the local provider's own loading code
(`providers.local.training.load_model`: NF4 + double quantization for QLoRA, bf16 for
LoRA), then trained by trl's SFTTrainer with the provider's arguments (LoRA r=16 on all
linear layers, gradient checkpointing, bf16) on random token sequences.

Reported per method: tokens/s (steady state, first steps excluded), MFU = tokens/s x
training FLOPs per token (`providers.local.training.flops_per_token`) / the GPU's dense bf16 peak, and peak memory
(torch.cuda.max_memory_allocated and reserved) against `providers.local.memory`'s estimate.
Reference (published single-GPU runs): one RTX 4090, packed 2048: LoRA ~3,100 tok/s, QLoRA ~2,400.

    .venv/bin/python bench/gpu_qlora_8b.py [--seq-len 2048] [--batch-size 1] [--steps 12]
    .venv/bin/python bench/gpu_qlora_8b.py --shape tiny   # the same code on a tiny shape,
                                                          # runs on the CPU (a dry run)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
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


def run_method(
    tuning: str, model_dir: Path, shape: dict, args, device: str, precision, work: Path
) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from providers.local.memory import estimate_training_memory
    from providers.local.model_shape import shape_from_config
    from providers.local.options import resolve_hyperparameters
    from providers.local.provider import training_setup
    from providers.local.training import (
        common_args,
        flops_per_token,
        keep_trainable_dtype,
        load_model,
        lora_config,
    )
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
        },
    )
    hp = resolve_hyperparameters(spec)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    g = torch.Generator().manual_seed(0)
    n_rows = args.batch_size * args.steps
    rows = [
        {"input_ids": torch.randint(3, shape["vocab_size"], (args.seq_len,), generator=g).tolist()}
        for _ in range(n_rows)
    ]
    targs, _ = common_args(hp, work / tuning, n_rows, False, device, precision)
    targs.update(save_strategy="no", max_steps=args.steps, logging_steps=max(1, args.steps))
    model = load_model(str(model_dir), tuning, device, precision)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**targs, max_length=args.seq_len, packing=False),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=lora_config(hp),
    )
    keep_trainable_dtype(trainer.model, precision)  # trl casts QLoRA adapters to bf16
    timer = StepTimer(device)
    trainer.add_callback(timer)
    trainer.train()
    steady = timer.times[2:] if len(timer.times) > 4 else timer.times
    step_s = sum(steady) / len(steady)
    tokens_per_step = args.batch_size * args.seq_len
    tps = tokens_per_step / step_s
    n_all = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    ms = shape_from_config(shape, f"bench-{args.shape}", "bench shape")
    n_params = ms.params  # 4-bit packing halves numel(): count from the shape instead
    fpt = flops_per_token(
        n_params,
        n_trainable,
        shape["num_hidden_layers"],
        shape["hidden_size"],
        args.seq_len,
        tuning,
        True,
    )
    # The estimate the provider refuses with, for exactly this job's options.
    est = estimate_training_memory(ms, training_setup(hp, device=device, precision=precision))
    out = dict(
        method=tuning,
        tokens_per_s=tps,
        step_s=step_s,
        flops_per_token=fpt,
        achieved_flops=tps * fpt,
        n_params=n_params,
        n_trainable=n_trainable,
        numel=n_all,
        estimate=est,
    )
    if device == "cuda":
        out["peak_allocated"] = torch.cuda.max_memory_allocated()
        out["peak_reserved"] = torch.cuda.max_memory_reserved()
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--methods", default="qlora,lora")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak of the GPU when its name is not in the table",
    )
    ap.add_argument(
        "--workdir",
        default=None,
        help="where the random model is written (8B: about 16 GB of disk)",
    )
    args = ap.parse_args()

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

    GIB = 2**30

    cuda = torch.cuda.is_available()
    if args.shape == "8b" and not cuda:
        print(
            "no CUDA GPU found: bench/gpu_qlora_8b.py needs one for the 8B shape "
            "(run it on a GPU machine; `--shape tiny` runs the same code on the CPU)"
        )
        return 2
    device = "cuda" if cuda else "cpu"
    from providers.local.training import process_precision

    precision = process_precision({"bf16": "auto"}, device)  # from the compute capability
    if not cuda:
        torch.set_num_threads(2)
        args.seq_len = min(args.seq_len, 256)
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_flops(gpu) if cuda else None)
    shape = SHAPES[args.shape]
    work = Path(tempfile.mkdtemp(prefix="ftm-bench-8b-", dir=args.workdir))
    try:
        t0 = time.monotonic()
        model_dir = build_random_model(shape, work / "model", device)
        print(
            f"device: {gpu}; shape {args.shape}; seq {args.seq_len} x batch {args.batch_size}; "
            f"{args.steps} steps per method; random model written in "
            f"{time.monotonic() - t0:.0f}s",
            flush=True,
        )
        results = []
        for method in args.methods.split(","):
            r = run_method(method.strip(), model_dir, shape, args, device, precision, work)
            results.append(r)
            mfu = f"{r['achieved_flops'] / peak:6.1%}" if peak else "   n/a"
            mem = ""
            if "peak_allocated" in r:
                mem = (
                    f"  peak {r['peak_allocated'] / GIB:5.1f} GiB allocated / "
                    f"{r['peak_reserved'] / GIB:5.1f} reserved vs estimate "
                    f"{r['estimate'].total / GIB:5.1f} GiB "
                    f"(ratio {r['peak_reserved'] / r['estimate'].total:.2f})"
                )
            print(
                f"{r['method']:>6}: {r['tokens_per_s']:9,.0f} tok/s  "
                f"{r['achieved_flops'] / 1e12:7.1f} TFLOP/s  MFU {mfu}{mem}",
                flush=True,
            )
            print(
                f"        estimate: {r['estimate'].describe()}; "
                f"{r['n_trainable']:,} trainable of {r['n_params']:,}",
                flush=True,
            )
        if len(results) == 2:
            q, lo = results
            print(
                f"{q['method']}/{lo['method']} throughput ratio: "
                f"{q['tokens_per_s'] / lo['tokens_per_s']:.2f} (published: QLoRA ~0.75-0.85x LoRA)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
