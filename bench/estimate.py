"""Benchmark the cost estimator: local time accuracy after calibration, and speed.

    .venv/bin/python bench/estimate.py            # both parts
    .venv/bin/python bench/estimate.py --quick    # smaller training runs

(a) Accuracy. Two real local LoRA jobs of the tiny Llama (built here, no download) run on
    this machine's CPU through the local provider (detached workers, the real database).
    The first (N examples) calibrates: its measured throughput sample replaces the default
    MFU for the CPU. The second (2N examples) is then estimated with
    `app.costs.estimate_for_launch` before it runs, and its measured training-loop time is
    compared: the ratio estimate / measured should lie within 0.75-1.25. The uncalibrated
    estimate (catalog default MFU) is printed beside it as the baseline.
(b) Speed. A 100,000-example dataset (token counts stored as intake stores them) is
    estimated with `app.costs.compare.compare` (hosted + local options), cold (first call,
    tokenizer load included), as a later process would (the request profile read from its
    on-disk cache) and warm (median of 7). Baseline, in the same run: the same
    billable-token and padded-token sums written as plain Python loops over array('I').
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["FTM_HOME"] = tempfile.mkdtemp(prefix="ftm-bench-estimate-")

# One thread: on a shared 2-core machine a 2-thread run stalls whenever another process
# takes a core, which makes its speed swing far more than a 1-thread run's.
OPTIONS = {
    "epochs": 3,
    "torch_threads": 1,
    "batch_size": 8,
    "max_seq_len": 256,
    "save_steps": 100_000,
    "eval_steps": 100_000,
    "logging_steps": 5,
    "early_stopping_patience": 0,
}
"""Evaluation and checkpoints pushed past the end: the training loop is what is timed."""


def _wait(job_id: int, timeout: float = 900.0):
    from app.database import get_engine
    from db.engine import read_session
    from db.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with read_session(get_engine()) as s:
            job = s.get(Job, job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise SystemExit(f"job {job_id} did not finish in {timeout:.0f} s")


def _spread(job_id: int) -> str:
    """Min-max of the rates the worker reported during one job: how steady the CPU was."""
    from sqlmodel import select

    from app.database import get_engine
    from db.engine import read_session
    from db.models import MetricPoint

    with read_session(get_engine()) as s:
        rates = [
            r
            for r in s.exec(
                select(MetricPoint.tokens_per_second).where(MetricPoint.job_id == job_id)
            ).all()
            if r
        ]
    return f"{min(rates):.0f}-{max(rates):.0f}" if rates else "n/a"


def accuracy(n: int) -> float:
    from app.costs.actuals import record_pending_actuals
    from app.costs.launch import estimate_for_launch
    from app.database import get_engine
    from app.datasets.store import add_dataset
    from app.jobs.launch import launch_job
    from db.engine import read_session, write_session
    from db.models import Job
    from providers.local import demo_data
    from providers.local.tiny_model import build_tiny_model

    home = Path(os.environ["FTM_HOME"])
    t0 = time.perf_counter()
    # No pre-training: the weights do not matter for timing, only the shape does.
    model = build_tiny_model(home / "tiny-model", demo_data.corpus_texts(), pretrain_steps=0)
    print(f"tiny model built in {time.perf_counter() - t0:.1f} s: {model}")
    datasets = []
    for size, seed in ((n, 1), (2 * n, 2)):
        path = demo_data.write_jsonl(
            home / f"train-{size}.jsonl", demo_data.labelling_examples(size, seed)
        )
        ds, _ = add_dataset(path, name=f"labels-{size}", val_fraction=0.1)
        datasets.append(ds)

    def run(ds, estimate: dict | None = None):
        job = launch_job("local", ds.id, str(model), method="lora", options=OPTIONS)
        if estimate is not None:  # as the launch wizard does with its preview
            with write_session(get_engine()) as s:
                row = s.get(Job, job.id)
                row.estimate, row.estimated_cost_usd = estimate, estimate["training_cost_usd"]
        job = _wait(job.id)
        if job.status != "succeeded":
            raise SystemExit(f"job {job.id} {job.status}: {job.error}")
        with write_session(get_engine()) as s:
            record_pending_actuals(s)
        with read_session(get_engine()) as s:
            return s.get(Job, job.id)

    first = run(datasets[0])
    print(
        f"job 1 ({n} examples): trained {first.actual['trained_tokens']:,} tokens in "
        f"{first.actual['train_runtime_s']:.2f} s ({first.actual['tokens_per_second']:.0f} "
        f"tokens/s) on {first.actual['hardware']}"
    )

    def estimate(ds):
        return estimate_for_launch(
            dataset_id=ds.id,
            provider="local",
            base_model=str(model),
            method="lora",
            options=OPTIONS,
            gpu="cpu",
        ).to_dict()

    snapshot = estimate(datasets[1])
    calibrated = snapshot["inputs"]["training"]
    with write_session(get_engine()) as s:  # the same estimate without the calibration
        from sqlmodel import delete

        from db.models import ThroughputSample

        saved = [
            dict(r.model_dump(exclude={"id"}))
            for r in s.exec(__import__("sqlmodel").select(ThroughputSample)).all()
        ]
        s.exec(delete(ThroughputSample))
    default = estimate(datasets[1])["inputs"]["training"]
    with write_session(get_engine()) as s:
        for row in saved:
            s.add(ThroughputSample(**row))

    second = run(datasets[1], snapshot)
    measured = second.actual["train_runtime_s"]
    ratio = calibrated["train_seconds"] / measured
    print(f"job 2 ({2 * n} examples): measured {measured:.2f} s training loop")
    print(
        f"  estimate, calibrated by job 1 (MFU {calibrated['calibration']['mfu']:.4f} measured): "
        f"{calibrated['train_seconds']:.2f} s -> ratio estimate/measured {ratio:.3f} "
        f"({'within' if 0.75 <= ratio <= 1.25 else 'OUTSIDE'} 25%)"
    )
    print(
        f"  baseline, uncalibrated (default MFU {default['calibration']['mfu']:.2f} of a nominal "
        f"CPU peak): {default['train_seconds']:.2f} s -> ratio "
        f"{default['train_seconds'] / measured:.3f}"
    )
    print(
        f"  machine noise: tokens/s between progress reports ranged {_spread(first.id)} (job 1) "
        f"and {_spread(second.id)} (job 2)"
    )
    print(
        f"  recorded on the job: time error {second.actual['train_time_error_pct']:+.1f}% "
        f"(training loop), cost ${second.actual_cost_usd:.6f}"
    )
    return ratio


def speed(n: int = 100_000) -> float:
    from array import array

    import numpy as np

    from app.costs.compare import compare
    from app.database import get_engine
    from db.engine import read_session, write_session
    from db.models import Dataset, TokenCount

    rng = np.random.default_rng(0)
    counts = np.clip(rng.lognormal(5.5, 0.8, n), 20, 100_000).astype("<u4")
    data_dir = Path(os.environ["FTM_HOME"]) / "big"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "train.jsonl", "w") as f:
        for i in range(n):
            f.write(
                '{"messages": [{"role": "system", "content": "Classify."}, {"role": "user", '
                f'"content": "ticket {i} about order {i * 7}"}}, {{"role": "assistant", '
                f'"content": "{("billing", "bug", "feature")[i % 3]}"}}]}}\n'
            )
    with write_session(get_engine()) as s:
        ds = Dataset(
            name="big",
            content_hash="big-100k",
            format="chat",
            source_path="big.jsonl",
            n_examples=n,
            n_train=n,
            n_validation=0,
            val_fraction=0.0,
            split_seed=0,
            verdict="ok",
            data_dir=str(data_dir),
        )
        s.add(ds)
        s.flush()
        s.add(
            TokenCount(
                dataset_id=ds.id,
                tokenizer="tiktoken:o200k_base",
                split="train",
                n=n,
                total=int(counts.sum(dtype=np.int64)),
                counts=counts.tobytes(),
            )
        )

    def once() -> float:
        t = time.perf_counter()
        with read_session(get_engine()) as s:
            compare(s, s.get(Dataset, ds.id), provider="all")
        return time.perf_counter() - t

    cold = once()  # loads the tokenizer and measures the request's shape
    from app.costs import dataset_inputs

    dataset_inputs._profile_cached.cache_clear()  # as a new process: the on-disk profile
    fresh = once()
    warm = statistics.median(once() for _ in range(7))

    def baseline() -> float:  # the same sums as plain Python loops
        t = time.perf_counter()
        with read_session(get_engine()) as s:
            row = s.get(TokenCount, 1)
            a = array("I")
            a.frombytes(row.counts)
        billable = sum(min(65_536, x) for x in a)
        padded = sum(max(a[i : i + 8]) * 8 for i in range(0, len(a), 8))
        assert billable and padded
        return time.perf_counter() - t

    base = statistics.median(baseline() for _ in range(3))
    print(
        f"estimate for {n:,} examples (hosted + local options, break-even): first ever "
        f"{cold * 1000:.1f} ms (tokenizer load), later process {fresh * 1000:.1f} ms, warm "
        f"{warm * 1000:.1f} ms (target < 100 ms)"
    )
    print(
        f"  baseline (only the two token sums, plain Python loops): {base * 1000:.1f} ms -> "
        f"the whole numpy estimate is {base / warm:.1f}x faster than the loops alone"
    )
    return warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller training runs")
    parser.add_argument("--examples", type=int, help="examples in the calibration run")
    parser.add_argument("--skip-training", action="store_true", help="only the speed part")
    args = parser.parse_args()
    n = args.examples or (120 if args.quick else 480)
    print(f"FTM_HOME={os.environ['FTM_HOME']}")
    speed()
    if not args.skip_training:
        accuracy(n)


if __name__ == "__main__":
    main()
