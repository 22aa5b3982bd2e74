"""The whole ftm path on Azure, by provider name only: launch, poll to success (the
deployment is requested then), evaluate the fine-tune through its deployment against the
base model's, promote, and export what an application needs."""

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
from app.sandbox.azure.server import AzureSandboxServer
from app.settings import get_settings
from db.engine import read_session
from db.models import Job, JobEvent
from tests.evaluation.sandbox_fixtures import BASE, add_ticket_datasets


@pytest.fixture
def azure_sandbox(monkeypatch):
    with AzureSandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_PROVIDERS__AZURE__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__AZURE__SANDBOX_URL", server.endpoint)
        get_settings.cache_clear()
        database.reset()
        yield server
    get_settings.cache_clear()


def _train(engine, timeout_s: float = 60.0) -> Job:
    job = launch_job(
        "azure", "tickets", BASE, suffix="good", hyperparameters={"n_epochs": 1}, engine=engine
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


def test_launch_poll_deploy_evaluate_promote_export_on_azure(azure_sandbox, tmp_path):
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    job = _train(engine)
    assert job.provider == "azure" and job.fine_tuned_model.startswith(f"ft:{BASE}:")
    with read_session(engine) as session:
        messages = [
            e.message for e in session.exec(select(JobEvent).where(JobEvent.job_id == job.id))
        ]
    assert any(m.startswith("deployment ftm-good-") for m in messages), messages
    (deployment,) = azure_sandbox.deployments.records.values()
    assert deployment.model == job.fine_tuned_model

    result = _cli(
        "eval",
        "--task",
        "routing",
        "--dataset",
        "tickets",
        "--provider",
        "azure",
        "--base",
        BASE,
        "--job",
        str(job.id),
        "--json",
    )
    assert result.exit_code == 0, result.output
    runs = {r["kind"]: r for r in json.loads(result.output)}
    tuned = runs["fine_tuned"]
    assert tuned["model"] == job.fine_tuned_model and tuned["status"] == "succeeded"
    assert tuned["summary"]["task"]["quality"] == 1.0  # answered through its deployment
    assert runs["zero_shot"]["summary"]["task"]["quality"] < 0.5  # the base, through its own

    promoted = _cli("promote", "--task", "routing", "--run", str(tuned["run_id"]))
    assert promoted.exit_code == 0, promoted.output
    record = json.loads(
        _cli("models", "export", "--alias", "production", "--format", "json").output
    )
    assert record["provider"] == "azure" and record["model"] == job.fine_tuned_model
    assert record["base_url"] == f"{azure_sandbox.endpoint}/openai"
    assert record["deployment"] == deployment.name  # what the application calls it by
    assert azure_sandbox.api_key not in json.dumps(record)
    env = _cli("models", "export", "--alias", "production", "--format", "env").output
    assert f"FTM_MODEL_DEPLOYMENT={deployment.name}\n" in env


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
