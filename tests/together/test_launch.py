"""`ftm launch --provider together` against the emulator: Together's own price beside
ftm's estimate, a refused price stopping the launch, and the actual cost from
``total_price`` once the job ends."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.costs.actuals import record_actual
from app.jobs.actions import refresh_job
from app.sandbox.together.server import TogetherSandboxServer
from db.engine import read_session, write_session
from db.models import Job
from tests.jobs.conftest import make_dataset
from tests.sandbox.conftest import START
from tests.together.conftest import SMALL, STEP_S


def _point_ftm_at(server: TogetherSandboxServer, monkeypatch) -> None:
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
    database.reset()


def _launch(*extra: str):
    args = ["launch", "--provider", "together", "--dataset", "toy", "--model", SMALL]
    args += ["--epochs", "2", "--batch-size", "8", "-y", *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _only_job() -> Job:
    with read_session(database.get_engine()) as session:
        (job,) = session.exec(select(Job)).all()
        return job


def test_launch_shows_together_s_price_then_the_job_costs_what_it_reports(
    server, monkeypatch, tmp_path
):
    _point_ftm_at(server, monkeypatch)
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    out = _launch()
    assert out.exit_code == 0, out.output
    print(out.output)
    assert "Provider's own estimate: $" in out.output
    job = _only_job()
    quote = job.estimate["provider_quote"]
    assert quote["allowed_to_proceed"] is True and quote["total_usd"] > 0
    # ftm's own estimate, from Together's declared prices, beside Together's quote; both
    # price the same tokens at the same LoRA rate.
    assert "(ftm's estimate: $" in out.output and "No cost estimate" not in out.output
    assert job.estimate["training_cost_usd"] == pytest.approx(quote["total_usd"], rel=0.1)
    assert len(server.state.jobs) == 1 and job.remote_id in server.state.jobs

    server.advance(1000 * STEP_S)
    refresh_job(job.id, engine=database.get_engine())
    job = _only_job()
    total_price = server.state.jobs[job.remote_id].total_price
    assert job.status == "succeeded"
    assert job.billed_usd == total_price / 1e9 == pytest.approx(quote["total_usd"])
    shown = CliRunner().invoke(cli, ["jobs", "show", str(job.id), "--json"])
    assert json.loads(shown.output)["billed_usd"] == job.billed_usd, shown.output
    with write_session(database.get_engine()) as session:
        actual = record_actual(session, session.get(Job, job.id))
    assert actual["cost_usd"] == job.billed_usd  # the provider's figure, not tokens x catalog
    assert actual["price_source"] == "reported by the provider"
    assert actual["billed_usd"] == 0.0 and actual["simulated"] is True  # the sandbox


def test_a_price_over_the_credit_limit_stops_the_launch_with_nothing_created(monkeypatch, tmp_path):
    with TogetherSandboxServer(
        seconds_per_step=STEP_S,
        start=START,
        frozen=True,
        data_dir=tmp_path / "tg",
        credit_limit_dollars=0.0,
    ) as poor:
        _point_ftm_at(poor, monkeypatch)
        make_dataset(database.get_engine(), tmp_path, n_train=12)
        out = CliRunner().invoke(
            cli,
            ["launch", "--provider", "together", "--dataset", "toy", "--model", SMALL, "-y"],
        )
        assert out.exit_code != 0
        assert "over the account's limit of $0.00" in out.output
        assert "nothing was created" in out.output and "Traceback" not in out.output
        assert not poor.state.jobs  # the files were uploaded, no job was made
        job = _only_job()
        assert job.status == "failed" and job.error["code"] == "quote_refused"
        assert job.remote_id is None


def test_a_spec_over_the_limits_is_refused_before_anything_is_recorded(
    server, monkeypatch, tmp_path
):
    _point_ftm_at(server, monkeypatch)
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    out = CliRunner().invoke(
        cli,
        [
            "launch",
            "--provider",
            "together",
            "--dataset",
            "toy",
            "--model",
            SMALL,
            "--option",
            "lora_r=512",
            "-y",
        ],
    )
    assert out.exit_code != 0 and "lora_r=512 is outside 1-64, the max_rank" in out.output
    assert not server.state.jobs and not server.state.files
    with read_session(database.get_engine()) as session:
        assert session.exec(select(Job)).all() == []


def test_jobs_made_elsewhere_are_imported_once_with_their_history(
    server, monkeypatch, tmp_path, train_file
):
    from tests.together.conftest import provider_for, spec_for

    outside = provider_for(server)  # "another script" making a job at Together
    remote_id = outside.create(outside.prepare(spec_for(train_file, uid="c" * 32))).remote_id
    server.advance(1000 * STEP_S)
    _point_ftm_at(server, monkeypatch)
    first = CliRunner().invoke(cli, ["jobs", "import", "--provider", "together"])
    assert first.exit_code == 0 and "Imported 1 job(s)" in first.output, first.output
    again = CliRunner().invoke(cli, ["jobs", "import", "--provider", "together"])
    assert "Imported 0 job(s); 1 already tracked" in again.output
    job = _only_job()
    assert job.remote_id == remote_id and job.status == "succeeded"
    assert job.billed_usd == server.state.jobs[remote_id].total_price / 1e9
    assert job.hyperparameters["training_type"] == "Lora" and job.method == "supervised"
    with read_session(database.get_engine()) as session:
        from db.models import JobEvent

        events = session.exec(select(JobEvent).where(JobEvent.job_id == job.id)).all()
    recorded = {e.provider_event_id for e in events if not e.provider_event_id.startswith("ftm:")}
    assert len(recorded) == len(server.state.jobs[remote_id].events)


def test_no_key_is_one_line_saying_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    database.reset()
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    out = CliRunner().invoke(
        cli, ["launch", "--provider", "together", "--dataset", "toy", "--model", SMALL, "-y"]
    )
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "no Together AI API key: set TOGETHER_API_KEY" in out.output
    with read_session(database.get_engine()) as session:
        assert session.exec(select(Job)).all() == []


def test_import_gives_a_lost_launch_back_to_its_row_by_the_uid_tag(
    server, monkeypatch, tmp_path, train_file
):
    """A launch whose create answer was lost (the row has no remote job, the poller gave
    up on it) while Together did create the job: Together keeps only a 16-hex tag of the
    uid, in the suffix, and import still finds the row by it instead of adding a second."""
    from tests.together.conftest import provider_for, spec_for

    _point_ftm_at(server, monkeypatch)
    engine = database.get_engine()
    with write_session(engine) as session:
        lost = Job(
            name="lost launch",
            provider="together",
            base_model=SMALL,
            method="supervised",
            status="failed",
            error={"code": "not_created", "message": "never created"},
        )
        other = Job(name="another lost launch", provider="together", base_model=SMALL,
                    method="supervised", status="failed")  # fmt: skip
        session.add(lost)
        session.add(other)
        session.flush()
        lost_id, uid = lost.id, lost.uid
    made = provider_for(server)  # the create that did land, carrying the row's uid tag
    remote_id = made.create(made.prepare(spec_for(train_file, uid=uid, suffix="tickets"))).remote_id
    made.close()
    out = CliRunner().invoke(cli, ["jobs", "import", "--provider", "together"])
    assert out.exit_code == 0, out.output
    assert "Imported 0 job(s); 1 already tracked" in out.output
    assert f"whose create answer was lost: {lost_id}" in out.output
    with read_session(engine) as session:
        rows = session.exec(select(Job)).all()
        assert len(rows) == 2  # nothing imported twice
        row = session.get(Job, lost_id)
        assert row.remote_id == remote_id and row.status not in ("failed", "cancelled")
        assert (
            session.exec(select(Job).where(Job.name == "another lost launch")).one().remote_id
            is None
        )


def test_with_auto_epochs_ftm_s_estimate_agrees_with_together_s_quote(
    server, monkeypatch, tmp_path
):
    """No --epochs: Together trains its default (1 epoch) and ftm prices that, so its
    estimate and Together's quote are the same job (OpenAI's rule would say 8 here)."""
    _point_ftm_at(server, monkeypatch)
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    out = CliRunner().invoke(
        cli,
        ["launch", "--provider", "together", "--dataset", "toy", "--model", SMALL, "-y"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    job = _only_job()
    quote = job.estimate["provider_quote"]
    assert job.estimate["epochs"] == 1
    assert job.estimate["training_cost_usd"] == pytest.approx(quote["total_usd"], rel=0.1)


def test_a_full_fine_tune_is_estimated_at_together_s_full_rate(server, monkeypatch, tmp_path):
    """``--option lora=false``: ftm prices the declared full-training rate, which Together
    bills apart from LoRA, and its estimate agrees with Together's quote."""
    _point_ftm_at(server, monkeypatch)
    make_dataset(database.get_engine(), tmp_path, n_train=12)
    out = _launch("--option", "lora=false")
    assert out.exit_code == 0, out.output
    job = _only_job()
    training = job.estimate["inputs"]["training"]
    assert training["usd_per_1m_tokens"] == 0.54  # LoRA would be 0.48
    quote = job.estimate["provider_quote"]
    assert job.estimate["training_cost_usd"] == pytest.approx(quote["total_usd"], rel=0.1)
