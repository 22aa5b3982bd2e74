"""Benchmark evaluation: a first run against a rerun served from the inference cache.

    .venv/bin/python bench/eval_cache.py            # 400 examples
    .venv/bin/python bench/eval_cache.py --quick    # 100 examples

The sandbox emulator (real HTTP, the real OpenAI SDK) plays the API; a routing dataset is
added through the real intake and fine-tuned on the sandbox. Then the same evaluation
(base zero-shot, base 3-shot, the fine-tune; each with the general-ability set) runs twice:
the first run calls the provider for every prompt, the rerun must make no calls at all.
Printed: wall time and provider calls of both, and the speed-up of the rerun (the first
run, measured in the same process, is the baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["FTM_HOME"] = tempfile.mkdtemp(prefix="ftm-bench-eval-")


class Counting:
    """The real provider with its completions counted."""

    def __init__(self, inner):
        self._inner, self.calls, self._lock = inner, 0, threading.Lock()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def complete(self, *args, **kwargs):
        with self._lock:
            self.calls += 1
        return self._inner.complete(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 100 if args.quick else 400

    from app import database
    from app.sandbox.server import SandboxServer

    with SandboxServer(port=0, seconds_per_step=0.001, seed=1) as server:
        os.environ["FTM_OPENAI__SANDBOX"] = "true"
        os.environ["FTM_OPENAI__SANDBOX_URL"] = server.base_url
        database.reset()
        engine = database.get_engine()

        from app.datasets.store import add_dataset
        from app.evaluation.service import EvalRequest, evaluate
        from app.jobs.providers import make_provider
        from tests.evaluation.sandbox_fixtures import BASE, ticket_rows, train, write_jsonl

        work = Path(tempfile.mkdtemp(prefix="ftm-bench-eval-data-"))
        add_dataset(
            write_jsonl(work / "tickets.jsonl", ticket_rows(n * 4)),
            name="tickets",
            val_fraction=0.25,
            seed=1,
        )
        job = train(engine, "tickets", "bench", timeout_s=600)
        provider = Counting(make_provider("openai"))
        req = EvalRequest(
            task="routing",
            dataset="tickets",
            provider="openai",
            base_model=BASE,
            few_shot=3,
            job_ids=[job.id],
            concurrency=8,
        )

        started = time.perf_counter()
        first = evaluate(req, engine=engine, provider_for=lambda _: provider)
        first_s = time.perf_counter() - started
        first_calls = provider.calls

        started = time.perf_counter()
        again = evaluate(req, engine=engine, provider_for=lambda _: provider)
        rerun_s = time.perf_counter() - started
        rerun_calls = provider.calls - first_calls

    prompts = sum(r.summary["task"]["n"] + r.summary["general"]["n"] for r in first)
    same = [r.summary["task"]["scores"] for r in first] == [
        r.summary["task"]["scores"] for r in again
    ]
    print(f"eval set: {n} held-out examples x 3 candidates (+ general set): {prompts} prompts")
    print(
        f"first run : {first_s:7.2f} s, {first_calls} provider calls "
        f"({prompts / first_s:.0f} prompts/s, concurrency 8)"
    )
    print(
        f"rerun     : {rerun_s:7.2f} s, {rerun_calls} provider calls "
        f"({prompts / rerun_s:.0f} prompts/s)"
    )
    print(f"rerun speed-up vs first run (baseline): {first_s / rerun_s:.1f}x; same scores: {same}")
    if rerun_calls:
        sys.exit("FAIL: the rerun called the provider")


if __name__ == "__main__":
    main()
