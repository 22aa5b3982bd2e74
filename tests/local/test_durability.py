"""The worker outlives its starter: cancel by signal, death detection, resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import get_engine
from db.engine import read_session
from db.models import Checkpoint, JobEvent
from providers.errors import ProviderError
from providers.local.jobdir import JobDir
from providers.types import JobStatus
from tests.local.conftest import job_row, launch, wait_terminal, wait_until
from tests.tiny import labelling_files

pytestmark = pytest.mark.slow


def test_cancel_checkpoints_and_ends_cancelled(provider, tiny_model, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=32)
    uid, remote = launch(
        provider, tiny_model, train, None, epochs=500, logging_steps=1, save_steps=10_000
    )
    job = JobDir(Path(remote.remote_id))
    wait_until(lambda: (job.read_status() or {}).get("step", 0) >= 3, timeout=120)

    provider.cancel(remote.remote_id)
    final = wait_terminal(provider, remote.remote_id, timeout=60)
    assert final.status == JobStatus.CANCELLED
    ckpt = job.last_checkpoint()
    assert ckpt is not None  # saved on the way out, though save_steps was never reached
    assert (ckpt / "optimizer.pt").is_file()
    row = job_row(uid, "cancelled")
    assert row.status == "cancelled"
    assert row.step is not None and row.step < row.total_steps
    with pytest.raises(ProviderError, match="already ended"):
        provider.cancel(remote.remote_id)


def test_cancel_while_the_model_loads_ends_cancelled_without_training(
    provider, tiny_model, tmp_path
):
    train, _ = labelling_files(tmp_path, n_train=16)
    uid, remote = launch(provider, tiny_model, train, None, epochs=50)
    job = JobDir(Path(remote.remote_id))
    wait_until(lambda: (job.read_status() or {}).get("status") == "running", timeout=60, every=0.05)
    provider.cancel(remote.remote_id)  # the worker is still importing torch / loading
    final = wait_terminal(provider, remote.remote_id, timeout=90)
    assert final.status == JobStatus.CANCELLED
    assert job.last_checkpoint() is None and not (job.read_status() or {}).get("step")
    assert job_row(uid, "cancelled").status == "cancelled"


def test_a_cancel_while_the_worker_process_is_still_starting_ends_cancelled(
    provider, tiny_model, tmp_path
):
    """SIGTERM a moment after the process starts, before Python could install a handler:
    the worker was started with the signal blocked, so it is handled, not fatal."""
    train, _ = labelling_files(tmp_path, n_train=16)
    uid, remote = launch(provider, tiny_model, train, None, epochs=50)
    job = JobDir(Path(remote.remote_id))
    assert job.signal_worker(signal.SIGTERM)  # at once: the interpreter is still starting
    final = wait_terminal(provider, remote.remote_id, timeout=90)
    assert final.status == JobStatus.CANCELLED, (final.error, job.log_path.read_text()[-2000:])
    assert job_row(uid, "cancelled").status == "cancelled"
    assert "before training began" in job.log_path.read_text()
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # ours restored


def test_killed_worker_is_detected_then_resumes_from_its_checkpoint(provider, tiny_model, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=32)
    uid, remote = launch(
        provider, tiny_model, train, None, epochs=15, save_steps=10, logging_steps=5
    )
    job = JobDir(Path(remote.remote_id))
    first = wait_until(job.last_checkpoint, timeout=120)
    pid, _ = job.read_pid()
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # no chance to write a final status
    wait_until(lambda: not job.worker_alive(), timeout=30)

    died = provider.refresh(remote.remote_id).job
    assert died.status == JobStatus.FAILED
    assert died.error.code == "worker_died"
    assert "last log lines" in died.error.message and "step" in died.error.message
    row = job_row(uid, "failed")
    assert row.status == "failed" and row.error["code"] == "worker_died"

    resumed = provider.resume_from_checkpoint(remote.remote_id)
    assert resumed.status == JobStatus.QUEUED
    assert job_row(uid).status == "queued"
    final = wait_terminal(provider, remote.remote_id)
    assert final.status == JobStatus.SUCCEEDED, final.error
    row = job_row(uid, "succeeded")
    assert row.status == "succeeded" and row.step == row.total_steps == 60
    log = job.log_path.read_text()
    resumed_from = job.read_config()
    assert resumed_from["attempt"] == 2
    with read_session(get_engine()) as s:
        messages = [e.message for e in s.scalars(select(JobEvent).where(JobEvent.job_id == row.id))]
        steps = {c.step for c in s.scalars(select(Checkpoint).where(Checkpoint.job_id == row.id))}
    resume_msgs = [m for m in messages if m.startswith("resuming from checkpoint-")]
    assert resume_msgs, messages
    resumed_step = int(resume_msgs[0].rpartition("-")[2])
    assert resumed_step >= int(first.name.rpartition("-")[2])
    assert max(steps) > resumed_step
    # The resumed run continued from the checkpoint's step; it did not start over.
    second_attempt = log[log.index("attempt 2") :]  # the worker logs its attempt on start
    assert f"step {resumed_step + 5}/60" in second_attempt  # the first step it logs
    assert "step 5/60" not in second_attempt


def test_resume_refuses_a_job_that_did_not_fail(provider, tiny_model, tmp_path):
    train, _ = labelling_files(tmp_path, n_train=16)
    _, remote = launch(provider, tiny_model, train, None, epochs=1)
    assert wait_terminal(provider, remote.remote_id).status == JobStatus.SUCCEEDED
    with pytest.raises(ProviderError, match="only a failed or cancelled job"):
        provider.resume_from_checkpoint(remote.remote_id)


def test_early_stopping_patience_counts_on_after_a_resume(provider, tiny_model, tmp_path):
    """A run stopped when its evaluation had not improved for a while resumes with the
    patience already spent, not a fresh one (the counter is in the checkpoint)."""
    from transformers import EarlyStoppingCallback, TrainerCallback

    from providers.local.training import build_trainer
    from providers.types import JobSpec
    from tests.local.conftest import new_job_row

    train, val = labelling_files(tmp_path, n_train=16, n_validation=8)
    spec = JobSpec(
        name="t",
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=str(val),
        method="full",
        ftm_job_uid=new_job_row("t", str(tiny_model), "full"),
        options=dict(
            device="cpu",
            torch_threads=1,
            epochs=40,
            learning_rate=2e-2,
            batch_size=4,
            eval_steps=2,
            early_stopping_patience=20,
        ),
    )
    job, _ = provider.write_job(provider.prepare(spec))
    config = job.read_config()

    class Watch(TrainerCallback):
        """Stops the first run right after a checkpoint whose patience counter is > 0,
        and notes the counter the resumed run starts with."""

        trainer = None
        counter_at_start: int | None = None
        resumed = False

        def early_stopping(self) -> EarlyStoppingCallback:
            handler = self.trainer.callback_handler
            return next(c for c in handler.callbacks if isinstance(c, EarlyStoppingCallback))

        def on_train_begin(self, args, state, control, **kw):
            self.counter_at_start = self.early_stopping().early_stopping_patience_counter

        def on_step_end(self, args, state, control, **kw):
            if self.resumed:  # what it started with is noted: no need to go on
                control.should_training_stop = True

        def on_save(self, args, state, control, **kw):
            if self.early_stopping().early_stopping_patience_counter > 0:
                control.should_training_stop = True

    first = Watch()
    first.trainer, _ = build_trainer(config, [first])
    first.trainer.train()
    ckpt = JobDir(job.path).last_checkpoint()
    saved = json.loads((ckpt / "trainer_state.json").read_text())["stateful_callbacks"]
    spent = saved["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"]
    assert spent > 0 and first.trainer.state.global_step < first.trainer.state.max_steps

    second = Watch()
    second.resumed = True
    second.trainer, _ = build_trainer(config, [second])
    second.trainer.train(resume_from_checkpoint=str(ckpt))
    assert second.counter_at_start == spent
