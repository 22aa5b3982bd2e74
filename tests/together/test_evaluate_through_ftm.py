"""The whole ftm path on Together, by provider name only, against the emulator WITHOUT
``serve_fine_tunes`` (as on the service, a fine-tune answers only from a dedicated
endpoint): launch, poll to success, `ftm eval` (the endpoint is created on first use),
promote, and `ftm models export` naming the endpoint an application calls."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.jobs.actions import refresh_job
from app.jobs.launch import launch_job
from app.sandbox.together.server import TogetherSandboxServer
from app.settings import get_settings
from db.engine import read_session
from db.models import Job, JobEvent
from tests.evaluation.sandbox_fixtures import add_ticket_datasets
from tests.together.conftest import SMALL


@pytest.fixture
def together_sandbox(monkeypatch, tmp_path):
    with TogetherSandboxServer(seconds_per_step=0.01, seed=5, data_dir=tmp_path / "tg") as server:
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
        get_settings.cache_clear()
        database.reset()
        yield server
    get_settings.cache_clear()


def _train(engine, timeout_s: float = 60.0) -> Job:
    job = launch_job(
        "together", "tickets", SMALL, suffix="good", hyperparameters={"n_epochs": 1}, engine=engine
    )
    deadline = time.monotonic() + timeout_s
    while True:
        refresh_job(job.id, engine=engine)
        with read_session(engine) as session:
            row = session.get(Job, job.id)
        if row.status in ("succeeded", "failed", "cancelled"):
            assert row.status == "succeeded", row.error
            return row
        assert time.monotonic() < deadline, f"job {row.id} still {row.status}"
        time.sleep(0.05)


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_eval_deploys_the_fine_tune_once_and_export_names_its_endpoint(together_sandbox, tmp_path):
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    job = _train(engine)
    assert not together_sandbox.state.endpoints  # not deployed after success: billed per minute
    with read_session(engine) as session:
        notes = [e.message for e in session.exec(select(JobEvent).where(JobEvent.job_id == job.id))]
    assert sum("creates one on 1x_nvidia_h100_80gb_sxm on first use" in m for m in notes) == 1

    result = _cli(
        "eval",
        "--task",
        "routing",
        "--dataset",
        "tickets",
        "--provider",
        "together",
        "--base",
        SMALL,
        "--job",
        str(job.id),
        "--json",
    )
    assert result.exit_code == 0, result.output
    runs = {r["kind"]: r for r in json.loads(result.output)}
    tuned = runs["fine_tuned"]
    assert tuned["model"] == job.fine_tuned_model and tuned["status"] == "succeeded"
    (endpoint,) = together_sandbox.state.endpoints.values()  # one, for all the examples
    assert endpoint.model == job.fine_tuned_model
    assert tuned["summary"]["task"]["quality"] == 1.0  # answered through its endpoint
    assert runs["zero_shot"]["summary"]["task"]["quality"] < 0.5  # the base, serverless

    promoted = _cli("promote", "--task", "routing", "--run", str(tuned["run_id"]))
    assert promoted.exit_code == 0, promoted.output
    record = json.loads(
        _cli("models", "export", "--alias", "production", "--format", "json").output
    )
    assert record["provider"] == "together" and record["model"] == job.fine_tuned_model
    assert record["deployment"] == endpoint.name  # what the application calls it by
    env = _cli("models", "export", "--alias", "production", "--format", "env").output
    assert f"FTM_MODEL_DEPLOYMENT={endpoint.name}\n" in env
