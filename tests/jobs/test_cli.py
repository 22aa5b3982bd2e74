"""`ftm launch`, `ftm jobs ...` on the emulator, through click's runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from app.cli.main import cli
from app.costs.money import usd
from app.datasets.store import dataset_file
from db.engine import read_session
from db.models import Job
from tests.jobs.conftest import MODEL, make_dataset


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_launch_list_show_cancel(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    out = run(
        "launch",
        "--provider",
        "openai",
        "--dataset",
        "toy",
        "--model",
        MODEL,
        "--epochs",
        "3",
        "--batch-size",
        "auto",
        "--lr-multiplier",
        "0.5",
        "--suffix",
        "cli",
        "--seed",
        "7",
        "--yes",
    )
    assert out.exit_code == 0, out.output
    assert "Launched job 1 on openai (simulated)" in out.output
    remote = next(iter(sandbox.state.jobs.values()))
    assert remote.suffix == "cli" and remote.seed == 7

    listed = json.loads(run("jobs", "list", "--json").output)
    assert listed[0]["id"] == 1 and listed[0]["simulated"] is True
    assert listed[0]["remote_id"] == remote.id
    table = run("jobs", "list").output
    assert "simulated" in table and "validating" in table

    shown = json.loads(run("jobs", "show", remote.id, "--json").output)
    assert shown["id"] == 1 and any("Created" in e["message"] for e in shown["events"])
    assert "simulated" in run("jobs", "show", "1").output

    cancelled = run("jobs", "cancel", "1")
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = run("jobs", "pause", "1")
    assert again.exit_code == 1
    assert "error: job 1 already ended (cancelled)" in again.output
    assert "Traceback" not in again.output


def test_bad_input_gets_a_clear_error(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    bad = run("launch", "--dataset", "toy", "--model", MODEL, "--epochs", "many", "--yes")
    assert bad.exit_code == 1 and "--epochs must be a whole number or 'auto'" in bad.output
    out_of_range = run("launch", "--dataset", "toy", "--model", MODEL, "--epochs", "99", "--yes")
    assert out_of_range.exit_code == 1 and "n_epochs=99 is out of range" in out_of_range.output
    missing = run("launch", "--dataset", "nope", "--model", MODEL, "--yes")
    assert missing.exit_code == 1 and "no dataset 'nope'" in missing.output
    unknown_job = run("jobs", "show", "12345")
    assert unknown_job.exit_code == 1 and "no job '12345'" in unknown_job.output
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_warnings_are_asked_about_and_no_means_nothing_recorded(
    engine, sandbox, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTM_TODAY", "2027-01-02")  # the lifecycle service's clock
    make_dataset(engine, tmp_path)
    out = run("launch", "--dataset", "toy", "--model", MODEL, input="n\n")
    assert (
        "warning: OpenAI accepts new fine-tuning jobs until 2027-01-06 (4 days left)" in out.output
    )
    assert "retires on 2027-01-14" in out.output
    assert out.exit_code == 1 and "nothing was recorded or sent" in out.output
    assert sandbox.state.jobs == {}
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_import_command(engine, sandbox, tmp_path):
    import openai

    dataset = make_dataset(engine, tmp_path)
    client = openai.OpenAI(base_url=sandbox.base_url, api_key=sandbox.api_key)
    with open(dataset_file(dataset, "train"), "rb") as fh:
        file_id = client.files.create(file=fh, purpose="fine-tune").id
    client.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    out = run("jobs", "import", "--provider", "openai")
    assert out.exit_code == 0 and "Imported 1 job(s); 0 already tracked." in out.output


def test_the_api_key_never_shows_in_a_failure(tmp_path, monkeypatch):
    from app import database

    key = "sk-proj-DONOTPRINTME0123456789abcdefXYZ"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("FTM_OPENAI__BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens
    monkeypatch.setenv("FTM_OPENAI__MAX_RETRIES", "0")
    database.reset()
    engine = database.get_engine()
    make_dataset(engine, tmp_path)
    out = run("launch", "--dataset", "toy", "--model", "gpt-4.1-nano-2025-04-14", "--yes")
    assert out.exit_code == 1 and "could not reach OpenAI" in out.output
    assert key not in out.output
    with read_session(engine) as session:
        job = session.scalars(select(Job)).one()
        assert job.status == "failed" and key not in json.dumps(job.error)
        assert key not in json.dumps(job.spec)


def test_launch_after_the_service_cutoff_shows_the_apis_refusal(tmp_path, monkeypatch):
    from datetime import datetime

    from app import database
    from app.sandbox.server import SERVICE_SUNSET, SandboxServer

    with SandboxServer(port=0, sunset=SERVICE_SUNSET, start=datetime(2027, 2, 1, 9, 0)) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path)
        out = run("launch", "--dataset", "toy", "--model", MODEL, "--yes")
        assert out.exit_code == 1
        assert "warning: OpenAI" in out.output and "2027-01-06" in out.output  # any date
        assert (
            "OpenAI refused creating the fine-tuning job (HTTP 403, training_not_available)"
            in out.output
        )
        assert "the service stopped accepting new fine-tuning jobs after 2027-01-06" in out.output
        assert "The job is recorded as failed: ftm jobs show 1" in out.output
        assert "Traceback" not in out.output and server.state.jobs == {}
        listed = json.loads(run("jobs", "list", "--json").output)
        assert [j["status"] for j in listed] == ["failed"]
        assert listed[0]["error"]["code"] == "training_not_available"


@pytest.fixture
def paid_openai(sandbox, monkeypatch):
    """The OpenAI provider pointed at the emulator as if it were the real API (a base URL
    and a key, no sandbox flag): ftm treats launches as spending money."""
    from app import database

    monkeypatch.delenv("FTM_OPENAI__SANDBOX", raising=False)
    monkeypatch.setenv("FTM_OPENAI__BASE_URL", sandbox.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    database.reset()
    return database.get_engine()


def _expected_estimate(engine, dataset) -> str:
    from app.costs.launch import estimate_for_launch

    est = estimate_for_launch(dataset_id=dataset.id, provider="openai", base_model=MODEL)
    assert est.training_cost_usd > 0 and not est.simulated
    return usd(est.training_cost_usd)  # the one money formatter (app/costs/money.py)


def test_a_paid_launch_states_its_estimate_before_asking_and_no_creates_nothing(
    paid_openai, sandbox, tmp_path
):
    engine = paid_openai
    dataset = make_dataset(engine, tmp_path)
    amount = _expected_estimate(engine, dataset)
    out = run("launch", "--dataset", "toy", "--model", MODEL, input="n\n")
    assert out.exit_code == 1 and "nothing was recorded or sent" in out.output
    text = out.output
    assert f"Estimated training cost: {amount}" in text
    assert "billable tokens" in text and "epochs" in text and "prices:" in text  # its inputs
    assert text.index(amount) < text.index(f"and spend about {amount}? [y/N]")
    assert sandbox.state.jobs == {} and not sandbox.state.files  # nothing sent
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_yes_skips_the_question_but_still_prints_the_estimate(paid_openai, sandbox, tmp_path):
    engine = paid_openai
    dataset = make_dataset(engine, tmp_path)
    amount = _expected_estimate(engine, dataset)
    out = run("launch", "--dataset", "toy", "--model", MODEL, "--yes")
    assert out.exit_code == 0, out.output
    assert f"Estimated training cost: {amount}" in out.output
    assert "and spend" not in out.output and "[y/N]" not in out.output
    assert out.output.index("Estimated training cost") < out.output.index("Launched job")
    assert len(sandbox.state.jobs) == 1


def test_a_sandbox_launch_says_it_is_simulated_and_does_not_ask(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    out = run("launch", "--dataset", "toy", "--model", MODEL, input="y\n")
    assert out.exit_code == 0, out.output
    assert "Sandbox job: simulated, nothing is billed" in out.output
    assert "and spend" not in out.output  # asked only about the warnings, if any
