"""Padding share of trained tokens with packing off and on, on a dataset of short examples.

Runs the local provider's own trainer set-up (`providers.local.training.build_trainer`)
twice on the same data, packing off then on, and counts, over one epoch of the training
dataloader, the positions that hold padding against all positions the model computes.
Target: under 5% with packing on.

    .venv/bin/python bench/packing_padding.py [--examples N] [--max-seq-len N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def padding_share(trainer) -> tuple[float, int, int]:
    """(share, padding positions, all positions) over one epoch of the train dataloader."""
    pad_id = trainer.processing_class.pad_token_id
    pads = total = 0
    for batch in trainer.get_train_dataloader():
        ids = batch["input_ids"]
        total += ids.numel()
        if "attention_mask" in batch:
            pads += int((batch["attention_mask"] == 0).sum())
        elif "position_ids" in batch:
            # padding-free (packed) batches: no attention mask; padding, if any, is the
            # pad id after the last sequence
            pads += int((ids == pad_id).sum())
        else:
            pads += int((ids == pad_id).sum())
    return pads / max(1, total), pads, total


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--max-seq-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    torch.set_num_threads(2)

    from providers.local import demo_data
    from providers.local.options import resolve_hyperparameters
    from providers.local.tiny_model import build_tiny_model
    from providers.local.training import build_trainer
    from providers.types import JobSpec

    tmp = Path(tempfile.mkdtemp(prefix="ftm-bench-packing-"))
    model = build_tiny_model(tmp / "model", demo_data.corpus_texts(), pretrain_steps=0)
    # Short examples of varied length: the labelling task, some with a longer user turn.
    rows = demo_data.labelling_examples(args.examples, seed=3)
    for i, r in enumerate(rows):
        r["messages"][1]["content"] = " ".join([r["messages"][1]["content"]] * (1 + i % 4))
    train = demo_data.write_jsonl(tmp / "train.jsonl", rows)

    results = {}
    for packing in (False, True):
        spec = JobSpec(
            name="bench",
            base_model=str(model),
            train_path=str(train),
            method="lora",
            ftm_job_uid="bench",
            options={
                "packing": packing,
                "epochs": 1,
                "batch_size": args.batch_size,
                "max_seq_len": args.max_seq_len,
            },
        )
        config = {
            "job_uid": "bench",
            "db_url": None,
            "base_model": str(model),
            "train_path": str(train),
            "validation_path": None,
            "output_dir": str(tmp / f"out-{packing}"),
            "hp": resolve_hyperparameters(spec),
        }
        trainer, plan = build_trainer(config, [])
        share, pads, total = padding_share(trainer)
        results[packing] = share
        print(
            f"packing {'on ' if packing else 'off'}: {pads:>7,} padding of {total:>7,} "
            f"positions = {share:6.2%} padding  ({plan.loss_masking})"
        )
    off, on = results[False], results[True]
    ratio = on / off if off else float("nan")
    print(
        f"padding share on/off = {ratio:.3f}; target: on < 5% -> {'PASS' if on < 0.05 else 'FAIL'}"
    )
    return 0 if on < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
