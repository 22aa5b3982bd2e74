"""Training throughput of the local provider against a bare trl script, same run.

Both train the same small Llama (built here, no download) on the same data with the same
settings (LoRA, all linear layers, batch, sequence length, epochs, threads):

- provider: a real job, `LocalProvider.create` -> detached worker writing progress to a
  database; its tokens/s is the one the worker measures around `trainer.train()` and
  records in `throughput_samples`;
- bare: `SFTTrainer` with the equivalent `SFTConfig` and `LoraConfig`, in this process,
  tokens/s measured the same way (non-padding tokens seen / time in `trainer.train()`).

Runs alternate (bare, provider, bare, provider...) so machine load hits both alike; the
best run of each is compared. Target: provider / bare >= 0.95.

    .venv/bin/python bench/local_throughput.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 2


def quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def bare_trl(model_dir: Path, train: Path, out: Path, opts: dict) -> float:
    """A plain trl script: load, LoRA config, SFTTrainer, train. Returns tokens/s."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from providers.local.data import chat_rows

    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        num_train_epochs=opts["epochs"],
        per_device_train_batch_size=opts["batch_size"],
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_length=opts["max_seq_len"],
        assistant_only_loss=True,
        seed=42,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=opts["logging_steps"],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        # trl's own defaults differ from the provider's CPU settings: say them explicitly
        gradient_checkpointing=False,
        bf16=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(chat_rows(train)),
        processing_class=tok,
        peft_config=LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the provider's worker drops it too
    t0 = time.monotonic()
    trainer.train()
    return trainer.state.num_input_tokens_seen / (time.monotonic() - t0)


def provider_job(model_dir: Path, train: Path, opts: dict) -> float:
    """A real local job through the provider's detached worker. Returns its tokens/s."""
    from sqlalchemy import select

    from app.database import get_engine
    from app.settings import get_settings
    from db.engine import read_session, write_session
    from db.models import Job, ThroughputSample
    from providers.local import LocalProvider
    from providers.types import JobSpec

    engine = get_engine()
    uid = uuid.uuid4().hex
    with write_session(engine) as s:
        s.add(
            Job(uid=uid, name="bench", provider="local", base_model=str(model_dir), method="lora")
        )
    provider = LocalProvider.from_settings(get_settings())
    spec = JobSpec(
        name="bench",
        base_model=str(model_dir),
        train_path=str(train),
        method="lora",
        ftm_job_uid=uid,
        options={
            "epochs": opts["epochs"],
            "batch_size": opts["batch_size"],
            "max_seq_len": opts["max_seq_len"],
            "torch_threads": THREADS,
            "logging_steps": opts["logging_steps"],
            "save_steps": 10**9,
        },
    )  # bare saves nothing either
    remote = provider.create(provider.prepare(spec))
    while True:
        job = provider.refresh(remote.remote_id).job
        if job.status.is_terminal:
            break
        time.sleep(0.5)
    if job.status.value != "succeeded":
        raise SystemExit(f"provider job failed: {job.error}")
    with read_session(engine) as s:
        row = s.scalars(select(Job).where(Job.uid == uid)).one()
        sample = s.scalars(select(ThroughputSample).where(ThroughputSample.job_id == row.id)).one()
        return sample.tokens_per_second


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller model and data (~1 min)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ftm-bench-throughput-"))
    os.environ["FTM_HOME"] = str(tmp / "home")
    quiet()
    import torch

    torch.set_num_threads(THREADS)
    from providers.local import demo_data
    from providers.local.tiny_model import build_tiny_model

    size = (
        dict(hidden_size=128, intermediate_size=344, num_layers=2, num_heads=4)
        if args.quick
        else dict(hidden_size=256, intermediate_size=688, num_layers=4, num_heads=8)
    )
    model_dir = build_tiny_model(
        tmp / "model", demo_data.corpus_texts(), pretrain_steps=0, num_kv_heads=2, **size
    )
    n = 192 if args.quick else 384
    train = demo_data.write_jsonl(tmp / "train.jsonl", demo_data.labelling_examples(n, seed=5))
    opts = {"epochs": 2, "batch_size": 8, "max_seq_len": 256, "logging_steps": 5}
    params = sum(
        p.numel()
        for p in __import__("transformers")
        .AutoModelForCausalLM.from_pretrained(model_dir)
        .parameters()
    )
    print(
        f"model: {params / 1e6:.1f}M parameters; {n} examples x {opts['epochs']} epochs, "
        f"batch {opts['batch_size']}, LoRA r=16 all-linear, {THREADS} threads"
    )
    bare, prov = [], []
    for i in range(args.repeats):
        bare.append(bare_trl(model_dir, train, tmp / f"bare-{i}", opts))
        print(f"  run {i + 1}: bare trl {bare[-1]:8,.0f} tok/s", flush=True)
        prov.append(provider_job(model_dir, train, opts))
        print(f"  run {i + 1}: provider {prov[-1]:8,.0f} tok/s", flush=True)
    b, p = max(bare), max(prov)
    ratio = p / b
    print(
        f"bare trl: {b:,.0f} tok/s   provider: {p:,.0f} tok/s   ratio provider/bare = "
        f"{ratio:.3f} (target >= 0.95: {'PASS' if ratio >= 0.95 else 'FAIL'})"
    )
    return 0 if ratio >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
