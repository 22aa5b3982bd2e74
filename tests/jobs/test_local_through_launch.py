"""The local provider through the same launch use-case and poller as the hosted one:
a real worker process trains the tiny model; the poller records the end and its cost."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from app.database import get_engine
from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.settings import PollerSettings, get_settings
from db.engine import read_session
from db.models import MetricPoint
from tests.jobs.conftest import job_row, poll_until
from tests.tiny import add_labelling_dataset, tiny_model  # noqa: F401  (session fixture)


@pytest.mark.slow
def test_a_local_job_launches_and_is_polled_to_the_end(tiny_model, tmp_path):  # noqa: F811
    engine = get_engine()
    data_dir = tmp_path / "labelling"
    add_labelling_dataset(engine, data_dir, n_train=32, n_validation=8)
    job = launch_job(
        "local",
        "labels",
        str(tiny_model),
        method="lora",
        hyperparameters={"n_epochs": 1},
        options={"torch_threads": 2, "device": "cpu"},
    )
    assert job.provider == "local" and job.remote_id and not job.simulated
    poller = Poller(
        engine, settings=PollerSettings(concurrency=2, requests_per_second=100, stall_after_s=3600)
    )
    poll_until(
        poller,
        lambda: job_row(engine, job.id).status in ("succeeded", "failed", "cancelled"),
        timeout=240,
        pause=0.5,
    )
    poller.close()
    row = job_row(engine, job.id)
    assert row.status == "succeeded", row.error
    assert row.actual is not None  # app.costs.actuals recorded the end
    with read_session(engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(MetricPoint).where(MetricPoint.job_id == row.id)
            )
            > 0
        )


@pytest.mark.slow
def test_a_killed_local_job_fails_then_ftm_jobs_resume_continues_it(
    tiny_model,  # noqa: F811
    tmp_path,
):
    import os
    import signal

    from click.testing import CliRunner

    from app.cli.main import cli
    from providers.local.jobdir import JobDir
    from tests.local.conftest import wait_until

    engine = get_engine()
    data_dir = tmp_path / "labelling"
    add_labelling_dataset(engine, data_dir, n_train=32, n_validation=8)
    job = launch_job(
        "local",
        "labels",
        str(tiny_model),
        method="lora",
        hyperparameters={"n_epochs": 15},
        options={"torch_threads": 2, "device": "cpu", "save_steps": 10, "logging_steps": 5},
    )
    workdir = JobDir(get_settings().file_store.local_path(job.remote_id))
    wait_until(workdir.last_checkpoint, timeout=120)
    pid, _ = workdir.read_pid()
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # no chance to write a final status
    wait_until(lambda: not workdir.worker_alive(), timeout=30)

    poller = Poller(
        engine, settings=PollerSettings(concurrency=2, requests_per_second=100, stall_after_s=3600)
    )
    try:
        poll_until(poller, lambda: job_row(engine, job.id).status == "failed", timeout=30)
        assert job_row(engine, job.id).error["code"] == "worker_died"

        result = CliRunner().invoke(cli, ["jobs", "resume", str(job.id)])
        assert result.exit_code == 0, result.output
        row = job_row(engine, job.id)
        assert row.status == "queued" and row.error is None and row.finished_at is None

        poll_until(
            poller,
            lambda: job_row(engine, job.id).status in ("succeeded", "failed", "cancelled"),
            timeout=240,
            pause=0.5,
        )
    finally:
        poller.close()
    row = job_row(engine, job.id)
    assert row.status == "succeeded", row.error
    assert row.step == row.total_steps == 60
    assert workdir.read_config()["attempt"] == 2
