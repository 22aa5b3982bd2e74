"""The hosted loop end to end: launch_job + the poller, real SDK over real HTTP to the
emulator on a random loopback port, real SQLite."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from sqlmodel import func, select

from app.jobs.actions import cancel_job, pause_job, resume_job
from app.jobs.launch import LaunchFailed, launch_job
from app.jobs.poller import Poller
from app.jobs.queries import job_detail
from db.engine import read_session
from db.models import Checkpoint, MetricPoint, UploadedFile
from tests.jobs.conftest import MODEL, job_row, make_dataset, poll_until


def _done(engine, job_id):
    return lambda: job_row(engine, job_id).status in ("succeeded", "failed", "cancelled")


def test_full_lifecycle_records_everything(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL, suffix="demo", seed=42,
                     hyperparameters={"n_epochs": 2})
    assert job.status == "validating" and job.remote_id.startswith("ftjob-")
    assert job.simulated
    # the cost estimate (app.costs) was snapshotted at launch
    assert job.estimate and job.estimated_cost_usd and job.estimated_cost_usd > 0
    remote = sandbox.state.jobs[job.remote_id]
    assert remote.metadata == {"ftm_job_id": job.uid}

    poller = Poller(engine)
    reports = poll_until(poller, _done(engine, job.id))
    poller.close()

    with read_session(engine) as session:
        d = job_detail(session, job.id)
    j = d.job
    assert j.status == "succeeded", j.error
    assert j.fine_tuned_model.startswith(f"ft:{MODEL}:sandbox:demo:")
    assert j.trained_tokens and j.trained_tokens > 0
    assert j.hyperparameters["n_epochs"] == 2
    assert j.step == j.total_steps and j.total_steps > 0
    assert j.train_loss is not None and j.finished_at is not None
    # the end was costed (app.costs.actuals): trained tokens at the model's training price
    assert j.actual is not None and j.actual_cost_usd and j.actual_cost_usd > 0
    # every step's metrics (events during the run, the result CSV at the end), once each
    assert [m.step for m in d.metrics] == list(range(1, j.total_steps + 1))
    # one checkpoint per epoch, the last 3 kept by the service
    assert [c.step for c in d.checkpoints] == [j.total_steps // 2, j.total_steps]
    assert all(c.model_ref.startswith("ft:") and ":ckpt-step-" in c.model_ref
               for c in d.checkpoints)
    assert any(a.kind == "result_file" for a in d.artifacts)
    # the provider's events, each once, plus ftm's own status events
    provider_events = [e for e in d.events if not e.provider_event_id.startswith("ftm:")]
    server_events = sandbox.state.jobs[j.remote_id].events
    assert sorted(e.provider_event_id for e in provider_events) == sorted(
        e.id for e in server_events)
    assert sum(r.events_fetched for r in reports) == len(server_events)
    assert j.events_cursor == server_events[-1].id
    statuses = [e.message for e in d.events if e.type == "status"]
    assert statuses[-1].startswith("Status: running -> succeeded")


def test_a_bad_training_file_fails_the_job_with_the_providers_error(engine, sandbox,
                                                                    tmp_path):
    bad = [{"messages": [{"role": "user", "content": f"no answer {i}"}]} for i in range(12)]
    make_dataset(engine, tmp_path, "bad", lines=bad)
    job = launch_job("openai", "bad", MODEL)
    poller = Poller(engine)
    poll_until(poller, _done(engine, job.id))
    poller.close()
    j = job_row(engine, job.id)
    assert j.status == "failed"
    assert j.error["param"] == "training_file"
    assert j.error["code"] and "Invalid file format" in j.error["message"]
    assert j.fine_tuned_model is None


def test_cancel(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path, n_train=60)
    job = launch_job("openai", "toy", MODEL)
    cancelled = cancel_job(job.id)
    assert cancelled.status == "cancelled"
    assert sandbox.state.jobs[job.remote_id].status == "cancelled"
    # the poller has nothing left to do, and a second cancel is refused plainly
    poller = Poller(engine)
    poll_until(poller, lambda: True)
    poller.close()
    assert job_row(engine, job.id).status == "cancelled"
    from app.jobs.actions import JobActionError

    with pytest.raises(JobActionError, match="already ended"):
        cancel_job(job.id)


def test_pause_and_resume(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path, n_train=40)
    job = launch_job("openai", "toy", MODEL, hyperparameters={"n_epochs": 10})
    poller = Poller(engine)
    poll_until(poller, lambda: job_row(engine, job.id).status == "running")
    paused = pause_job(job.id)
    assert paused.status == "paused"
    poll_until(poller, lambda: True)
    assert job_row(engine, job.id).status == "paused"  # unknown to the SDK's enum: kept
    resumed = resume_job(job.id)
    assert resumed.status in ("queued", "running")
    poll_until(poller, _done(engine, job.id))
    poller.close()
    j = job_row(engine, job.id)
    assert j.status == "succeeded"
    with read_session(engine) as session:
        messages = [e.message for e in job_detail(session, j.id).events]
    assert any("paused" in m.lower() for m in messages)
    assert any("resumed" in m.lower() for m in messages)


def test_dpo(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path, "prefs", kind="preference")
    job = launch_job("openai", "prefs", MODEL, method="dpo",
                     hyperparameters={"beta": 0.2, "n_epochs": 1})
    assert sandbox.state.jobs[job.remote_id].method == "dpo"
    poller = Poller(engine)
    poll_until(poller, _done(engine, job.id))
    poller.close()
    j = job_row(engine, job.id)
    assert j.status == "succeeded", j.error
    assert j.method == "dpo" and j.hyperparameters["beta"] == 0.2


def test_an_uploaded_file_is_reused_by_content_hash(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    first = launch_job("openai", "toy", MODEL)
    second = launch_job("openai", "toy", MODEL, suffix="again")
    a, b = sandbox.state.jobs[first.remote_id], sandbox.state.jobs[second.remote_id]
    assert a.training_file == b.training_file and a.validation_file == b.validation_file
    assert len([f for f in sandbox.state.files.values() if f.purpose == "fine-tune"]) == 2
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(UploadedFile)) == 2
    # a file deleted at the provider is uploaded again, not reused blindly
    openai.OpenAI(base_url=sandbox.base_url, api_key=sandbox.api_key).files.delete(
        a.training_file)
    third = launch_job("openai", "toy", MODEL)
    assert sandbox.state.jobs[third.remote_id].training_file != a.training_file


def test_import_brings_in_jobs_created_elsewhere(engine, sandbox, tmp_path):
    from app.jobs.importing import import_jobs

    dataset = make_dataset(engine, tmp_path)
    ours = launch_job("openai", "toy", MODEL)
    client = openai.OpenAI(base_url=sandbox.base_url, api_key=sandbox.api_key)
    with open(Path(dataset.data_dir) / "train.jsonl", "rb") as fh:
        file_id = client.files.create(file=fh, purpose="fine-tune").id
    theirs = [client.fine_tuning.jobs.create(model=MODEL, training_file=file_id,
                                             suffix=f"web{i}").id for i in range(2)]
    sandbox.advance(60)  # let them finish on the sandbox clock
    report = import_jobs("openai")
    assert len(report.imported) == 2 and report.already_known == 1
    with read_session(engine) as session:
        rows = {job_row(engine, i).remote_id: job_row(engine, i) for i in report.imported}
        assert set(rows) == set(theirs)
        for row in rows.values():
            assert row.status == "succeeded" and row.fine_tuned_model and row.simulated
            assert session.scalar(select(func.count()).select_from(MetricPoint)
                                  .where(MetricPoint.job_id == row.id)) > 0
            assert session.scalar(select(func.count()).select_from(Checkpoint)
                                  .where(Checkpoint.job_id == row.id)) > 0
    again = import_jobs("openai")
    assert again.imported == [] and again.already_known == 3
    assert job_row(engine, ours.id).remote_id == ours.remote_id


def test_launch_refused_by_the_service_leaves_nothing_half_recorded(tmp_path, monkeypatch):
    from datetime import date, datetime

    from app import database
    from app.sandbox.server import SERVICE_SUNSET, SandboxServer

    with SandboxServer(port=0, seconds_per_step=0.01, sunset=SERVICE_SUNSET,
                       start=datetime(2027, 1, 10, 12, 0)) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        engine = database.get_engine()
        make_dataset(engine, tmp_path)
        seen: list[list[str]] = []

        def go_ahead(warnings):
            seen.append(warnings)
            return True

        with pytest.raises(LaunchFailed) as info:
            launch_job("openai", "toy", MODEL, confirm=go_ahead, today=date(2027, 1, 10))
        assert any("stopped accepting new fine-tuning jobs after 2027-01-06" in w
                   for w in seen[0])
        # the API's own refusal, plainly
        assert "service stopped accepting new fine-tuning jobs" in str(info.value)
        assert server.state.jobs == {}
        j = job_row(engine, info.value.job_id)
        assert j.status == "failed" and j.remote_id is None
        assert j.error["code"] == "fine_tuning_unavailable"
        assert "stopped accepting" in j.error["message"]


def test_declining_the_warnings_records_nothing(engine, sandbox, tmp_path):
    from datetime import date

    from app.jobs.launch import LaunchDeclined
    from db.models import Job

    make_dataset(engine, tmp_path)
    with pytest.raises(LaunchDeclined):
        launch_job("openai", "toy", MODEL, confirm=lambda w: not w, today=date(2027, 1, 3))
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert sandbox.state.jobs == {} and sandbox.state.files == {}


def test_ctrl_c_during_create_leaves_a_row_the_poller_settles(engine, sandbox, tmp_path):
    from app.jobs.providers import make_provider

    make_dataset(engine, tmp_path)
    provider = make_provider("openai", engine=engine)
    real_create = provider.create

    def create_then_interrupted(spec):
        real_create(spec)  # the request reached the service...
        raise KeyboardInterrupt  # ...and the user pressed Ctrl+C before the answer

    provider.create = create_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        launch_job("openai", "toy", MODEL, provider=provider)
    with read_session(engine) as session:
        from db.models import Job

        row = session.scalars(select(Job)).one()
    assert row.remote_id is None and row.error["code"] == "create_unconfirmed"
    poller = Poller(engine)
    poll_until(poller, _done(engine, row.id))
    poller.close()
    settled = job_row(engine, row.id)
    assert settled.status == "succeeded" and settled.error is None
    assert settled.remote_id == next(iter(sandbox.state.jobs))  # the one job, now tracked
