"""A run killed and resumed from its checkpoint continues exactly as the uninterrupted
run with the same seed: the weights, the optimizer moments, the learning-rate schedule
and the data order all come back, so every later step has the same learning rate and
the same loss."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from providers.local.jobdir import JobDir
from providers.types import JobStatus
from tests.local.conftest import launch, wait_terminal, wait_until
from tests.tiny import labelling_files

# Three worker start-ups (torch, transformers, trl) on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STEPS = 36  # 24 examples / batch 4 = 6 steps an epoch, 6 epochs
SAVE_EVERY = 6
# Deterministic and sensitive: no dropout, a fixed seed and data order, CPU on any machine,
# and a learning rate high enough (with warmup then linear decay) that Adam's state and
# the schedule's position both change every step's loss and learning rate.
OPTIONS = dict(
    epochs=6,
    batch_size=4,
    logging_steps=1,
    save_steps=SAVE_EVERY,
    dropout=0.0,
    seed=7,
    scheduler="linear",
    warmup_ratio=0.2,
    learning_rate=2e-3,
    device="cpu",
    early_stopping_patience=0,
)


def _history(job: JobDir) -> dict[int, dict]:
    """Per-step loss and learning rate as the trainer recorded them (full precision) in
    the final checkpoint; a resumed run carries the steps before its checkpoint over."""
    final = job.last_checkpoint()
    assert final is not None and final.name == f"checkpoint-{STEPS}", final
    state = json.loads((final / "trainer_state.json").read_text())
    return {h["step"]: h for h in state["log_history"] if "loss" in h}


def _kill_after_a_checkpoint(job: JobDir) -> None:
    wait_until(
        lambda: (
            job.last_checkpoint() is not None
            and (job.read_status() or {}).get("step", 0) > SAVE_EVERY + 1
        ),
        timeout=400,
        every=0.05,
    )
    pid, _ = job.read_pid()
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # no chance to save anything more
    wait_until(lambda: not job.worker_alive(), timeout=30)


def test_a_killed_and_resumed_run_matches_the_uninterrupted_run(provider, tiny_model, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=24)

    # Both runs at once: the reference trains while the other is killed and resumed.
    _, reference = launch(provider, tiny_model, train, None, **OPTIONS)
    _, killed = launch(provider, tiny_model, train, None, **OPTIONS)
    job = JobDir(Path(killed.remote_id))
    _kill_after_a_checkpoint(job)
    assert provider.refresh(killed.remote_id).job.status == JobStatus.FAILED
    resumed_from = int(job.last_checkpoint().name.rpartition("-")[2])
    assert SAVE_EVERY <= resumed_from < STEPS

    provider.resume_from_checkpoint(killed.remote_id)
    final = wait_terminal(provider, killed.remote_id, timeout=400)
    assert final.status == JobStatus.SUCCEEDED, final.error
    assert "resuming from checkpoint-" in job.log_path.read_text()
    assert wait_terminal(provider, reference.remote_id, timeout=400).status == JobStatus.SUCCEEDED
    expected = _history(JobDir(Path(reference.remote_id)))
    assert sorted(expected) == list(range(1, STEPS + 1))
    got = _history(job)
    assert sorted(got) == sorted(expected)

    after = range(resumed_from + 1, STEPS + 1)
    for step in after:
        assert got[step]["learning_rate"] == pytest.approx(
            expected[step]["learning_rate"], rel=1e-9
        ), f"learning rate at step {step}"
        assert got[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-4, abs=1e-5), (
            f"loss at step {step}: resumed {got[step]['loss']}, uninterrupted "
            f"{expected[step]['loss']}"
        )
    # The comparison has teeth: the loss moves from step to step, and the schedule moves
    # over the resumed stretch (a restarted schedule would not match it).
    assert len({round(expected[s]["loss"], 4) for s in after}) > len(after) // 2
    assert expected[resumed_from + 1]["learning_rate"] != expected[STEPS]["learning_rate"]
