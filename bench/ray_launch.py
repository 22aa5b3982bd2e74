"""Benchmark: time from `ftm launch` to the first training step, on a local Ray head
against a plain local launch.

    .venv/bin/python bench/ray_launch.py              # 2 launches of each, alternating
    .venv/bin/python bench/ray_launch.py --repeat 1 --model DIR   # a tiny model built before

The tiny model (tests/tiny.py) trains on the labelling task, one torch thread, on the
CPU. A real Ray head is started on this machine first (tests/ray_head.py; its start is
not counted: a cluster is already running when one launches onto it). Each launch goes
through ftm's launch use-case (`launch_job`, what `ftm launch` calls) and is timed until
the worker reports step 1 in the job's status file; it is then cancelled. Printed: each
launch's seconds, the median of each kind, and the ratio Ray / local.
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
os.environ["FTM_HOME"] = tempfile.mkdtemp(prefix="ftm-bench-ray-")


def first_step_seconds(dataset: str, model: Path, options: dict) -> float:
    """Seconds from launch_job to the worker's first reported step; cancels the job."""
    from app.jobs import actions
    from app.jobs.launch import launch_job
    from app.settings import get_settings
    from providers.local.jobdir import JobDir
    from tests.ray_head import wait_for

    t0 = time.perf_counter()
    job = launch_job(
        "local",
        dataset,
        str(model),
        method="lora",
        hyperparameters={"n_epochs": 50},
        options={"device": "cpu", "torch_threads": 1, "logging_steps": 1, **options},
    )
    workdir = JobDir(get_settings().file_store.local_path(job.remote_id))
    wait_for(lambda: ((workdir.read_status() or {}).get("step") or 0) >= 1, 600, pause=0.02)
    seconds = time.perf_counter() - t0
    actions.cancel_job(str(job.id))
    wait_for(lambda: (workdir.read_status() or {}).get("status") == "cancelled", 120)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a tiny model built before (default: build one)")
    args = parser.parse_args()

    from app.database import get_engine
    from tests.ray_head import RayHead
    from tests.tiny import add_labelling_dataset, build

    home = Path(os.environ["FTM_HOME"])
    model = args.model.resolve() if args.model else build(home / "tiny-model")
    add_labelling_dataset(get_engine(), home / "labelling", n_train=32, n_validation=8)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with RayHead(num_cpus=2) as head:
        for i in range(args.repeat):
            for kind, options in (("local", {}), ("ray", {"cluster": head.address})):
                seconds = first_step_seconds("labels", model, options)
                times[kind].append(seconds)
                print(f"run {i + 1} {kind:5s}: {seconds:6.2f} s to the first step", flush=True)
    local, ray = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"median local: {local:.2f} s; median on the Ray head: {ray:.2f} s")
    print(f"ratio Ray / local: {ray / local:.2f}x ({ray - local:+.2f} s)")


if __name__ == "__main__":
    main()
