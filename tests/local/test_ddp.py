"""Real multi-process training on the CPU: `accelerate launch` of two gloo ranks (the path
a multi-GPU job takes), a cancel that lands while a checkpoint is written, and resume."""

from __future__ import annotations

import math
import os
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import get_engine
from db.engine import read_session
from db.models import MetricPoint, ThroughputSample
from providers.local.jobdir import JobDir, _alive
from providers.types import JobStatus
from tests.local.conftest import job_row, launch, wait_terminal, wait_until
from tests.tiny import labelling_files

pytestmark = pytest.mark.slow

# A user's default accelerate config that would change the run if it leaked in: fp16 on
# the launcher (transformers takes ACCELERATE_MIXED_PRECISION when the job asks for none).
USER_DEFAULT_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
mixed_precision: fp16
num_processes: 8
num_machines: 1
"""


@pytest.fixture(autouse=True)
def users_accelerate_default(tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    (home / "accelerate").mkdir(parents=True)
    (home / "accelerate" / "default_config.yaml").write_text(USER_DEFAULT_CONFIG)
    monkeypatch.setenv("HF_HOME", str(home))  # workers inherit it


def _rank_pids(job: JobDir) -> list[tuple[int, int]]:
    return [
        tuple(int(x) for x in p.read_text().split())
        for p in sorted(job.path.glob("worker.rank*.pid"))
    ]


def _metric_steps(uid: str) -> list[int]:
    with read_session(get_engine()) as s:
        job_id = job_row(uid).id
        return [m.step for m in s.scalars(select(MetricPoint).where(MetricPoint.job_id == job_id))]


def _logged_steps(text: str) -> list[int]:
    """The steps of the training-loss lines (one per logged step) in a worker log."""
    return [int(m) for m in re.findall(r"step (\d+)/\d+  loss ", text)]


def test_two_cpu_ranks_train_with_one_progress_writer_and_a_log_each(
    provider, tiny_model, tmp_path
):
    train, _ = labelling_files(tmp_path, n_train=16)
    uid, remote = launch(
        provider,
        tiny_model,
        train,
        None,
        n_gpus=2,
        device="cpu",
        torch_threads=1,
        epochs=2,
        batch_size=2,
        logging_steps=1,
    )
    job = JobDir(Path(remote.remote_id))
    final = wait_terminal(provider, remote.remote_id, timeout=150)
    log0 = job.log_path.read_text()
    assert final.status == JobStatus.SUCCEEDED, (final.error, log0[-3000:])

    # Two processes trained, each with its own log; the user's default config stayed out.
    log1 = job.rank_log_path(1).read_text()
    assert "rank 0 of 2 on cpu:0 (MULTI_CPU), mixed precision no" in log0
    assert "rank 1 of 2 on cpu:0 (MULTI_CPU), mixed precision no" in log1
    assert "rank 1 of 2" not in log0
    # Each step is a batch per rank: 16 rows / (2 per rank x 2 ranks) x 2 epochs.
    total = math.ceil(16 / (2 * 2)) * 2
    row = job_row(uid, "succeeded")
    assert row.step == row.total_steps == total
    # Progress written once, by rank 0: one log line and one metric point per step.
    assert _logged_steps(log0) == list(range(1, total + 1))
    assert _logged_steps(log1) == []
    assert sorted(_metric_steps(uid)) == list(range(1, total + 1))
    assert len(_rank_pids(job)) == 2
    wait_until(lambda: not any(_alive(*p) for p in _rank_pids(job)), timeout=30)
    wait_until(lambda: not job.worker_alive(), timeout=30)  # the launcher exits too
    # The plan and the throughput sample know two processes trained: the sample is one
    # process's rate (tokens over both ranks / 2), written once.
    assert job.read_status()["plan"]["world_size"] == 2
    with read_session(get_engine()) as s:
        samples = s.scalars(select(ThroughputSample).where(ThroughputSample.job_id == row.id))
        assert [sample.world_size for sample in samples] == [2]


def test_a_cancel_during_a_checkpoint_stops_every_rank_at_one_step_then_resumes(
    provider, tiny_model, tmp_path
):
    train, _ = labelling_files(tmp_path, n_train=16)
    uid, remote = launch(
        provider,
        tiny_model,
        train,
        None,
        n_gpus=2,
        device="cpu",
        torch_threads=1,
        epochs=6,
        batch_size=2,
        logging_steps=1,
        save_steps=4,
    )
    job = JobDir(Path(remote.remote_id))
    total = math.ceil(16 / (2 * 2)) * 6
    # The checkpoint directory appears when its save begins (the trainer state is written
    # last). Freeze rank 0, the one writing the files, there: if it is still mid-save,
    # cancel while it is, then let it go on; if the save was already done, try the next.
    wait_until(lambda: len(_rank_pids(job)) == 2, timeout=150)
    writer = _rank_pids(job)[0][0]
    for caught in range(4, total, 4):
        ckpt = job.checkpoints / f"checkpoint-{caught}"
        wait_until(ckpt.exists, timeout=150, every=0.002)
        os.kill(writer, signal.SIGSTOP)
        if not (ckpt / "trainer_state.json").exists():
            break
        os.kill(writer, signal.SIGCONT)
    else:
        pytest.fail("never caught a checkpoint mid-save")
    t0 = time.monotonic()
    provider.cancel(remote.remote_id)
    os.kill(writer, signal.SIGCONT)
    final = wait_terminal(provider, remote.remote_id, timeout=60)
    log0 = job.log_path.read_text()
    assert final.status == JobStatus.CANCELLED, (final.error, log0[-3000:])
    assert time.monotonic() - t0 < 60
    wait_until(lambda: not any(_alive(*p) for p in _rank_pids(job)), timeout=30)
    wait_until(lambda: not job.worker_alive(), timeout=30)  # the launcher exits too
    # ...on its own: not signalled (torch's agent would then send its ranks "closing
    # signal"s, SIGKILL them after 30 s, and die on a SignalException).
    log0 = job.log_path.read_text()
    assert "closing signal" not in log0 and "Traceback" not in log0, log0[-3000:]

    # Both ranks stopped at the same step, after the checkpoint being written completed.
    stopped = job.read_status()["actual"]["stopped_at_step"]
    assert caught < stopped < total
    ckpt = job.last_checkpoint()
    assert ckpt.name == f"checkpoint-{stopped}"
    for f in ("trainer_state.json", "optimizer.pt", "adapter_model.safetensors"):
        assert (ckpt / f).is_file(), f
    assert (job.checkpoints / f"checkpoint-{caught}" / "trainer_state.json").is_file()
    log1 = job.rank_log_path(1).read_text()
    for log in (log0, log1):
        assert re.search(rf"stopped on .* at step {stopped}, checkpoint saved", log), log[-2000:]
    assert job_row(uid, "cancelled").status == "cancelled"

    # A cancelled run with a checkpoint continues where it stopped.
    resumed = provider.resume_from_checkpoint(remote.remote_id)
    assert resumed.status == JobStatus.QUEUED and job_row(uid).status == "queued"
    final = wait_terminal(provider, remote.remote_id, timeout=150)
    log0 = job.log_path.read_text()
    assert final.status == JobStatus.SUCCEEDED, (final.error, log0[-3000:])
    second = log0[log0.index("attempt 2") :]
    assert _logged_steps(second) == list(range(stopped + 1, total + 1))
    row = job_row(uid, "succeeded")
    assert row.status == "succeeded" and row.step == total
    assert sorted(_metric_steps(uid)) == list(range(1, total + 1))
