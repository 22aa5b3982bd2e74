"""The hosted loop end to end: launch_job + the poller, real SDK over real HTTP to the
emulator on a random loopback port, real SQLite."""

from __future__ import annotations

import asyncio

import openai
import pytest
from sqlmodel import func, select

from app.datasets.store import dataset_file
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
    job = launch_job(
        "openai", "toy", MODEL, suffix="demo", seed=42, hyperparameters={"n_epochs": 2}
    )
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
    assert all(
        c.model_ref.startswith("ft:") and ":ckpt-step-" in c.model_ref for c in d.checkpoints
    )
    assert any(a.kind == "result_file" for a in d.artifacts)
    # the provider's events, each once, plus ftm's own status events
    provider_events = [e for e in d.events if not e.provider_event_id.startswith("ftm:")]
    server_events = sandbox.state.jobs[j.remote_id].events
    assert sorted(e.provider_event_id for e in provider_events) == sorted(
        e.id for e in server_events
    )
    assert sum(r.events_fetched for r in reports) == len(server_events)
    assert j.events_cursor == server_events[-1].id
    statuses = [e.message for e in d.events if e.type == "status"]
    assert statuses[-1].startswith("Status: running -> succeeded")


def test_a_bad_training_file_fails_the_job_with_the_providers_error(engine, sandbox, tmp_path):
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
    job = launch_job(
        "openai", "prefs", MODEL, method="dpo", hyperparameters={"beta": 0.2, "n_epochs": 1}
    )
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
    openai.OpenAI(base_url=sandbox.base_url, api_key=sandbox.api_key).files.delete(a.training_file)
    third = launch_job("openai", "toy", MODEL)
    assert sandbox.state.jobs[third.remote_id].training_file != a.training_file


def test_import_brings_in_jobs_created_elsewhere(engine, sandbox, tmp_path):
    from app.jobs.importing import import_jobs

    dataset = make_dataset(engine, tmp_path)
    ours = launch_job("openai", "toy", MODEL)
    client = openai.OpenAI(base_url=sandbox.base_url, api_key=sandbox.api_key)
    with open(dataset_file(dataset, "train"), "rb") as fh:
        file_id = client.files.create(file=fh, purpose="fine-tune").id
    theirs = [
        client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, suffix=f"web{i}").id
        for i in range(2)
    ]
    sandbox.advance(60)  # let them finish on the sandbox clock
    report = import_jobs("openai")
    assert len(report.imported) == 2 and report.already_known == 1
    with read_session(engine) as session:
        rows = {job_row(engine, i).remote_id: job_row(engine, i) for i in report.imported}
        assert set(rows) == set(theirs)
        for row in rows.values():
            assert row.status == "succeeded" and row.fine_tuned_model and row.simulated
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(MetricPoint)
                    .where(MetricPoint.job_id == row.id)
                )
                > 0
            )
            assert (
                session.scalar(
                    select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == row.id)
                )
                > 0
            )
    again = import_jobs("openai")
    assert again.imported == [] and again.already_known == 3
    assert job_row(engine, ours.id).remote_id == ours.remote_id


def test_launch_refused_by_the_service_leaves_nothing_half_recorded(tmp_path, monkeypatch):
    from datetime import date, datetime

    from app import database
    from app.sandbox.server import SERVICE_SUNSET, SandboxServer

    with SandboxServer(
        port=0, seconds_per_step=0.01, sunset=SERVICE_SUNSET, start=datetime(2027, 1, 10, 12, 0)
    ) as server:
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
        assert any("stopped accepting new fine-tuning jobs after 2027-01-06" in w for w in seen[0])
        # the API's own refusal, plainly
        assert "service stopped accepting new fine-tuning jobs" in str(info.value)
        assert server.state.jobs == {}
        j = job_row(engine, info.value.job_id)
        assert j.status == "failed" and j.remote_id is None
        assert j.error["code"] == "training_not_available"
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


def _launch_with_a_lost_create(engine, *, interrupted: bool = False):
    """Launch through a provider whose create never reaches the service but reports the
    outcome as unknown (as after timeouts on every attempt), or is interrupted (Ctrl+C).
    Returns the job id, the real create and the prepared spec, so a test can make the
    create land late."""
    from app.jobs.launch import LaunchUnconfirmed
    from app.jobs.providers import make_provider
    from providers.errors import ProviderError

    provider = make_provider("openai", engine=engine)
    sent = []

    def create_lost(spec):
        sent.append(spec)
        if interrupted:
            raise KeyboardInterrupt
        raise ProviderError("timed out on every attempt", code="create_unconfirmed", retryable=True)

    real_create, provider.create = provider.create, create_lost
    with pytest.raises(KeyboardInterrupt if interrupted else LaunchUnconfirmed):
        launch_job("openai", "toy", MODEL, provider=provider)
    with read_session(engine) as session:
        from db.models import Job

        job_id = session.scalars(select(Job.id)).one()
    return job_id, real_create, sent[0]


def _jobs_for(sandbox, uid):
    return [j for j in sandbox.state.jobs.values() if j.metadata.get("ftm_job_id") == uid]


def test_a_create_that_lands_late_is_found_not_sent_again(engine, sandbox, tmp_path):
    """A slow request can make the job after the launch's last lookup: inside the grace
    window a launch that is not visible yet stays unconfirmed, and is tracked once it
    appears."""
    from app.settings import PollerSettings

    make_dataset(engine, tmp_path)
    job_id, real_create, spec = _launch_with_a_lost_create(engine)
    poller = Poller(engine, settings=PollerSettings(unconfirmed_grace_s=120), backoff_base_s=0.01)
    report = asyncio.run(poller.run_once())
    row = job_row(engine, job_id)
    assert report.awaiting_confirmation == 1 and report.errors == 0
    assert row.status == "uploading" and row.error["code"] == "create_unconfirmed"
    assert sandbox.state.jobs == {}

    created = real_create(spec)  # the request lands at the service late
    poll_until(poller, _done(engine, job_id))
    poller.close()
    row = job_row(engine, job_id)
    assert row.status == "succeeded" and row.error is None
    assert row.remote_id == created.remote_id and len(sandbox.state.jobs) == 1


def test_a_create_that_never_landed_is_sent_again_once_after_the_grace_window(
    engine, sandbox, tmp_path
):
    """Past the grace window the lost create can no longer land: the poller sends it
    again, and two pollers at once (the TUI and `ftm watch`) send it only once."""
    from datetime import UTC, datetime, timedelta

    from app.settings import PollerSettings

    make_dataset(engine, tmp_path)
    job_id, _, spec = _launch_with_a_lost_create(engine)
    clock = [datetime.now(UTC)]
    settings = PollerSettings(unconfirmed_grace_s=300)
    pollers = [
        Poller(engine, settings=settings, now=lambda: clock[0], backoff_base_s=0.001)
        for _ in range(2)
    ]

    async def both_once():
        return await asyncio.gather(*(p.run_once() for p in pollers))

    assert [r.awaiting_confirmation for r in asyncio.run(both_once())] == [1, 1]
    clock[0] += timedelta(seconds=301)  # the whole window passed with no job at the service
    asyncio.run(both_once())
    assert len(_jobs_for(sandbox, spec.ftm_job_uid)) == 1
    poll_until(pollers[0], _done(engine, job_id))
    for p in pollers:
        p.close()
    row = job_row(engine, job_id)
    assert row.status == "succeeded" and row.error is None
    [remote] = _jobs_for(sandbox, spec.ftm_job_uid)
    assert row.remote_id == remote.id
    with read_session(engine) as session:
        d = job_detail(session, job_id)
    assert any("sending the create again" in e.message for e in d.events)


def test_an_interrupted_launch_never_seen_fails_and_import_revives_it(engine, sandbox, tmp_path):
    """Ctrl+C during the create: if no job appears within the grace window the launch
    ends ``not_created`` (what the user interrupted is not sent again); a job that turns
    up even later is given back to its row by `ftm jobs import`."""
    from datetime import UTC, datetime, timedelta

    from app.jobs.importing import import_jobs
    from app.settings import PollerSettings

    make_dataset(engine, tmp_path)
    job_id, real_create, spec = _launch_with_a_lost_create(engine, interrupted=True)
    clock = [datetime.now(UTC)]
    poller = Poller(
        engine,
        settings=PollerSettings(unconfirmed_grace_s=300),
        now=lambda: clock[0],
        backoff_base_s=0.001,
    )
    assert asyncio.run(poller.run_once()).awaiting_confirmation == 1
    assert job_row(engine, job_id).status == "uploading"
    clock[0] += timedelta(seconds=301)
    poll_until(poller, _done(engine, job_id), timeout=10)
    row = job_row(engine, job_id)
    assert row.status == "failed" and row.error["code"] == "not_created"
    assert "never created" in row.error["message"] and sandbox.state.jobs == {}

    created = real_create(spec)  # against all odds the job appears later
    report = import_jobs("openai", engine=engine)
    assert report.reattached == [job_id] and report.imported == []
    row = job_row(engine, job_id)
    assert row.remote_id == created.remote_id and row.error is None
    assert row.status not in ("failed", "cancelled")
    poll_until(poller, _done(engine, job_id))
    poller.close()
    assert job_row(engine, job_id).status == "succeeded"
