"""Job detail actions driven with Pilot on the OpenAI emulator: cancel (confirmed), pause
and resume, evaluate, promote (gates decide), refusals the provider cannot do, and a
failed provider call that shows an error while the app goes on."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app import database
from app.database import get_engine
from app.jobs.actions import refresh_job
from app.jobs.launch import launch_job
from app.sandbox.faults import FaultPlan
from app.sandbox.server import SandboxServer
from app.tui.app import create_app
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.evaluate import EvaluateScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.screens.promote import PromoteScreen
from db.engine import write_session
from db.models import EvalRun, Job
from tests.jobs.conftest import MODEL, job_row, make_dataset
from tests.tui.helpers import FIXED_NOW, settle


@pytest.fixture
def slow_sandbox(monkeypatch):
    """An emulator whose jobs start running at once and take minutes per step, so a job
    is still running while the test acts on it."""
    with SandboxServer(
        port=0, seconds_per_step=60.0, seed=7, validation_s=0.0, queue_s=0.0
    ) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        monkeypatch.setenv("FTM_OPENAI__MAX_RETRIES", "0")
        database.reset()
        yield server


@pytest.fixture
def running_job(slow_sandbox, tmp_path):
    engine = get_engine()
    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL, hyperparameters={"n_epochs": 3})
    refresh_job(job.id)  # the emulator says running; record it
    assert job_row(engine, job.id).status == "running"
    return job


async def _until(pilot, condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def _open_detail(pilot, job_id: int) -> JobDetailScreen:
    await settle(pilot)
    pilot.app.push_screen(JobDetailScreen(job_id))
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobDetailScreen)
    await _until(pilot, lambda: screen.job is not None, what="the job to load")
    return screen


def _messages(app, severity: str | None = None) -> list[str]:
    return [
        f"{n.title or ''}: {n.message}"
        for n in app._notifications
        if severity is None or n.severity == severity
    ]


async def test_cancel_asks_first_and_no_leaves_the_job_running(slow_sandbox, running_job):
    remote = slow_sandbox.state.jobs[running_job.remote_id]
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_detail(pilot, running_job.id)
        summary = str(screen.query_one("#job-summary").render())
        assert "x cancel" in summary and "p pause" in summary
        # bound with ids and descriptions, so the help and the command palette list them
        from app.tui.commands import key_actions

        listed = {k.binding_id: k.description for k in key_actions(app, screen)}
        for action in ("cancel", "pause", "resume", "evaluate", "promote"):
            assert listed.get(f"job_detail.{action}"), action

        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.destructive and "cannot be undone" in app.screen.details
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is screen
        assert remote.status == "running"
        assert job_row(get_engine(), running_job.id).status == "running"

        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await _until(
            pilot,
            lambda: job_row(get_engine(), running_job.id).status == "cancelled",
            what="the cancel",
        )
        await settle(pilot)
        assert remote.status == "cancelled"
        assert any("cancel done" in m for m in _messages(app))
        # a second cancel is refused with the reason, not sent
        await pilot.press("x")
        await settle(pilot)
        assert app.screen is screen
        assert any("already ended" in m.lower() for m in _messages(app, "warning"))


async def test_pause_then_resume_with_confirmation(slow_sandbox, running_job):
    remote = slow_sandbox.state.jobs[running_job.remote_id]
    engine = get_engine()
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, running_job.id)
        await pilot.press("p")  # pausing spends nothing: no confirmation
        await _until(
            pilot, lambda: job_row(engine, running_job.id).status == "paused", what="the pause"
        )
        assert remote.status == "paused"
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert any("already paused" in m.lower() for m in _messages(app, "warning"))

        await pilot.press("u")  # resuming bills again: asks, with the spend left
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await _until(
            pilot,
            lambda: job_row(engine, running_job.id).status in ("queued", "running"),
            what="the resume",
        )
        assert remote.status in ("queued", "running")


@pytest.mark.expects_tui_error
async def test_a_provider_error_is_shown_and_the_app_goes_on(slow_sandbox, running_job):
    slow_sandbox.faults = FaultPlan().add("jobs.cancel", "server_error", count=1)
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_detail(pilot, running_job.id)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await _until(pilot, lambda: _messages(app, "error"), what="the error")
        await settle(pilot)
        errors = _messages(app, "error")
        assert any("cancel job" in m and "could not cancel" in m for m in errors), errors
        assert app.is_running and app.screen is screen
        assert job_row(get_engine(), running_job.id).status == "running"
        # the fault was one-off: the same key now works
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await _until(
            pilot,
            lambda: job_row(get_engine(), running_job.id).status == "cancelled",
            what="the retried cancel",
        )


def _local_job(status: str, **kw) -> int:
    with write_session(get_engine()) as session:
        job = Job(
            name="local-lora",
            provider="local",
            base_model="tiny",
            method="lora",
            status=status,
            remote_id="local-1",
            created_at=FIXED_NOW,
            updated_at=FIXED_NOW,
            step=4,
            total_steps=10,
            **kw,
        )
        session.add(job)
        session.flush()
        return job.id


async def test_an_action_the_provider_cannot_do_is_greyed_and_refused():
    job_id = _local_job("running")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open_detail(pilot, job_id)
        summary = screen.query_one("#job-summary").render()
        pause = next(s for s in summary.spans if summary.plain[s.start : s.end] == "p pause")
        assert "dim" in str(pause.style)
        await pilot.press("p")
        await settle(pilot)
        assert any("local cannot pause jobs" in m.lower() for m in _messages(app, "warning"))
        await pilot.press("u")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any(
            "only a failed or cancelled job can be continued" in m.lower() for m in _messages(app)
        )
        assert job_row(get_engine(), job_id).status == "running"


async def test_a_failed_local_job_offers_resume_from_checkpoint_with_confirmation():
    job_id = _local_job("failed")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "last checkpoint" in app.screen.title_text
        assert app.screen.spend_usd is None  # local training bills nothing
        await pilot.press("n")
        await settle(pilot)
        assert job_row(get_engine(), job_id).status == "failed"


async def test_evaluate_opens_the_evaluate_screen_for_this_job(sandbox):
    with write_session(get_engine()) as session:
        job = Job(
            name="done",
            provider="openai",
            base_model=MODEL,
            method="supervised",
            status="succeeded",
            remote_id="ftjob-x",
            fine_tuned_model=f"ft:{MODEL}:x",
            created_at=FIXED_NOW - timedelta(hours=1),
            simulated=True,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EvaluateScreen)
        assert app.screen.initial_job_id == job_id


def _evaluated_job(model: str) -> int:
    """A finished job whose model (an `EchoLabelProvider` model) was evaluated against a
    3-shot baseline of ``base``; returns the job id."""
    from app.evaluation.candidates import Candidate, split_example
    from app.evaluation.runner import run_eval
    from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples

    engine = get_engine()
    provider = EchoLabelProvider()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]
    runs = {}
    for kind, name, kw in (
        ("few_shot", "base", {"k": 3}),
        ("fine_tuned", model, {"base_model": "base"}),
    ):
        runs[name] = run_eval(
            Candidate(kind, "echo", name, **kw),
            examples,
            routing_config(),
            provider=provider,
            engine=engine,
            train_examples=routing_examples(12),
        )
    with write_session(engine) as session:
        job = Job(
            name=model,
            provider="openai",
            base_model="base",
            method="supervised",
            status="succeeded",
            remote_id=f"ftjob-{model}",
            fine_tuned_model=model,
            created_at=FIXED_NOW,
        )
        session.add(job)
        session.flush()
        session.get(EvalRun, runs[model].id).job_id = job.id
        return job.id


@pytest.mark.expects_tui_error
async def test_promote_refused_by_a_gate_shows_the_gate():
    from app.promotion import aliases

    engine = get_engine()
    job_id = _evaluated_job("forgetful")  # answers the task, forgets the general set
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("o")
        await settle(pilot)
        await _until(pilot, lambda: _messages(app, "error"), what="the gate verdict")
        assert not isinstance(app.screen, (ConfirmScreen, PromoteScreen))
        refused = [m for m in _messages(app, "error") if "gate(s) failed" in m]
        assert refused and "✗ general" in refused[0], _messages(app)
        assert any(ch.isdigit() for ch in refused[0].split("✗ general")[1])  # its numbers
        assert aliases.current(engine, "routing", "production") is None


async def test_promote_asks_which_alias_and_why_and_records_both():
    from sqlmodel import select

    from app.promotion import aliases
    from db.models import Promotion

    engine = get_engine()
    job_id = _evaluated_job("good")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("o")
        await _until(
            pilot,
            lambda: isinstance(app.screen, PromoteScreen),
            what=f"the promote screen: {_messages(app)}",
        )
        screen = app.screen
        assert "✓ baseline" in str(screen.query_one("#promote-gates").render())
        assert screen.query_one("#promote-alias").value == "production"  # the default
        await pilot.press("tab")  # from the Promote button round to the alias field
        assert screen.query_one("#promote-alias").has_focus
        screen.query_one("#promote-alias").value = ""
        await pilot.press(*"bad alias", "enter")
        assert isinstance(app.screen, PromoteScreen)  # refused inline, nothing promoted
        assert "letters, digits" in str(screen.query_one("#promote-problem").render())
        screen.query_one("#promote-alias").value = ""
        await pilot.press(*"canary", "tab")
        screen.query_one("#promote-why").value = ""
        await pilot.press(*"beats the 3-shot baseline", "enter")
        await _until(
            pilot,
            lambda: aliases.current(engine, "routing", "canary") is not None,
            what=f"the promotion: {_messages(app)}",
        )
    from db.engine import read_session

    with read_session(engine) as session:
        (promotion,) = session.scalars(select(Promotion)).all()
    assert promotion.alias == "canary" and promotion.why == "beats the 3-shot baseline"
    import getpass

    assert promotion.who == getpass.getuser()  # the OS user: no name is configured
    assert aliases.current(engine, "routing", "production") is None


async def test_promote_without_an_evaluation_says_to_evaluate_first():
    with write_session(get_engine()) as session:
        job = Job(
            name="done",
            provider="openai",
            base_model=MODEL,
            method="supervised",
            status="succeeded",
            remote_id="ftjob-y",
            fine_tuned_model="ft:y",
            created_at=FIXED_NOW,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_detail(pilot, job_id)
        await pilot.press("o")
        await settle(pilot)
        assert any("press e to evaluate" in m for m in _messages(app, "warning"))
