"""`ftm eval --job N` needs no --provider/--base/--dataset: they come from the job (real
launch and real SDK over HTTP to the sandbox emulator)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.database import get_engine
from app.evaluation.data import EvalDataError
from app.evaluation.service import EvalRequest, with_job_defaults
from app.sandbox.server import SandboxServer
from db.engine import write_session
from db.models import Job
from tests.evaluation.sandbox_fixtures import BASE, add_ticket_datasets, train


@pytest.fixture
def finished_job(monkeypatch, tmp_path) -> Job:
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        add_ticket_datasets(tmp_path)
        yield train(get_engine(), "tickets", "jobdefaults")


def test_eval_job_takes_provider_base_model_and_dataset_from_the_job(finished_job):
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--task",
            "routing",
            "--job",
            str(finished_job.id),
            "--few-shot",
            "2",
            "--no-general",
            "--limit",
            "6",
            "--json",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    by_kind = {r["kind"]: r for r in runs}
    assert set(by_kind) == {"zero_shot", "few_shot", "fine_tuned"}
    assert by_kind["zero_shot"]["model"] == BASE == by_kind["few_shot"]["model"]
    assert by_kind["fine_tuned"]["model"] == finished_job.fine_tuned_model
    assert all(r["status"] == "succeeded" for r in runs)
    from db.engine import read_session
    from db.models import EvalRun

    with read_session(get_engine()) as session:
        stored = [session.get(EvalRun, r["run_id"]) for r in runs]
    assert {s.provider for s in stored} == {"openai"}
    assert {s.dataset_id for s in stored} == {finished_job.dataset_id}


def test_what_is_given_wins_and_disagreeing_jobs_are_named(finished_job):
    engine = get_engine()
    req = EvalRequest(task="t", dataset=None, job_ids=[finished_job.id])
    filled = with_job_defaults(engine, req)
    assert (filled.provider, filled.base_model, filled.dataset) == (
        "openai",
        BASE,
        finished_job.dataset_id,
    )
    given = with_job_defaults(
        engine, EvalRequest(task="t", dataset="tickets", base_model="b", job_ids=[finished_job.id])
    )
    assert (given.provider, given.base_model, given.dataset) == ("openai", "b", "tickets")
    with write_session(engine) as session:
        other = Job(
            uid="other",
            name="other",
            provider="openai",
            base_model="gpt-4.1-mini",
            dataset_id=finished_job.dataset_id,
            method="supervised",
            spec={},
        )
        session.add(other)
        session.flush()
        other_id = other.id
    with pytest.raises(EvalDataError) as info:
        with_job_defaults(
            engine, EvalRequest(task="t", dataset=None, job_ids=[finished_job.id, other_id])
        )
    assert "different base models" in str(info.value) and "--base MODEL" in str(info.value)
    result = CliRunner().invoke(cli, ["eval", "--task", "routing", "--job", "999"])
    assert result.exit_code != 0 and "no job with id 999" in result.output
