"""The launch wizard on the sandbox emulator: fields, inline validation, the live
preview, the confirmation that states the spend, the launch and a refused launch."""

from __future__ import annotations

import pytest
from sqlmodel import select
from textual.widgets import Input, Select, Static

from app.database import get_engine
from app.sandbox.faults import FaultPlan, FaultRule
from app.tui.app import create_app
from app.tui.screens.confirm import ConfirmScreen, format_usd
from app.tui.screens.launch_form import validate_form
from app.tui.screens.launch_wizard import LaunchWizard
from db.engine import read_session
from db.models import Job
from tests.tui.helpers import add_dataset, add_dataset_row, settle


def _jobs() -> list[Job]:
    with read_session(get_engine()) as session:
        return list(session.exec(select(Job)))


async def _open_wizard(pilot) -> LaunchWizard:
    await pilot.press("n")
    await settle(pilot)
    await pilot.pause(0.5)  # the preview is debounced
    await settle(pilot)
    wizard = pilot.app.screen
    assert isinstance(wizard, LaunchWizard)
    return wizard


def _text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_wizard_fills_from_dataset_provider_and_models_and_previews_cost(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _open_wizard(pilot)
        form = wizard.form
        assert form.dataset.name == "tickets" and form.dataset.verdict in ("ok", "warnings")
        assert "valid" in _text(wizard, "#dataset-info")
        assert form.provider == "openai"
        assert form.base_models, "base models come from the provider"
        assert form.method == "supervised"
        assert form.name == "tickets-ft"
        # the first usable model has a sunset: the warning is shown
        if form.base_model_info().sunset:
            assert "retires on" in _text(wizard, "#base-model-warning")
        preview = wizard.preview
        assert preview is not None and preview.training_cost_usd > 0
        body = _text(wizard, "#preview-body")
        assert (
            "Training" in body
            and "Break-even" in body
            and format_usd(preview.training_cost_usd) in body
        )
        assert wizard.query_one("#wizard-status", Static).render().plain == "ready to launch"


async def test_bad_fields_are_flagged_inline_and_block_the_launch(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    add_dataset_row("broken", verdict="errors")
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _open_wizard(pilot)
        wizard.query_one("#n_epochs", Input).value = "three"
        await settle(pilot)
        error = wizard.query_one("#error-n_epochs", Static)
        assert error.display and "not a number" in error.render().plain
        broken_id = next(d.id for d in wizard._datasets if d.name == "broken")
        wizard.query_one("#dataset", Select).value = broken_id
        await settle(pilot)
        assert "validation errors" in wizard.query_one("#error-dataset", Static).render().plain
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, LaunchWizard), "no confirmation for an invalid form"
        assert any("Fix the form" in (n.title or "") for n in app._notifications)
        assert _jobs() == []


async def test_confirmation_states_the_spend_and_no_launches_nothing(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _open_wizard(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.spend_usd == wizard.preview.training_cost_usd
        assert format_usd(wizard.preview.training_cost_usd) in _text(confirm, "#confirm-spend")
        assert "sandbox" in _text(confirm, "#confirm-spend-note").lower()
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is wizard
        assert _jobs() == []


async def test_yes_launches_on_the_sandbox_and_keeps_the_estimate(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _open_wizard(pilot)
        expected = wizard.preview.training_cost_usd
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert not isinstance(app.screen, LaunchWizard)
        (job,) = _jobs()
        assert job.provider == "openai" and job.simulated and job.remote_id
        assert job.name == "tickets-ft"
        assert job.estimated_cost_usd == expected
        assert any("launched" in n.message for n in app._notifications)


@pytest.mark.expects_tui_error
async def test_refused_create_shows_an_error_and_the_app_goes_on(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    # the upload fails: the provider refuses, the job row ends failed with the reason
    sandbox.faults = FaultPlan(rules=[FaultRule(route="files.create", kind="server_error")])
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _open_wizard(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is wizard, "the wizard stays open to retry"
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors, "the failure is shown"
        assert "Traceback" not in errors[0].message
        assert not wizard.query_one("#wizard-launch").disabled
        (job,) = _jobs()
        assert job.status == "failed" and job.error
        await pilot.press("escape")
        assert app.is_running and not isinstance(app.screen, LaunchWizard)


async def test_local_provider_takes_a_model_directory_and_its_own_options(
    sandbox, ftm_home, tiny_model
):
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _open_wizard(pilot)
        wizard.query_one("#provider", Select).value = "local"
        await settle(pilot)
        assert wizard.form.capabilities.runs_locally
        assert not wizard.query_one("#common-hyperparameters").display
        assert not wizard.query_one("#options-section").collapsed
        wizard.query_one("#base_model_other", Input).value = str(tiny_model)
        wizard.query_one("#method", Select).value = "lora"
        wizard.query_one("#option-epochs", Input).value = "1"
        wizard.query_one("#option-r", Input).value = "zero"
        await settle(pilot)
        assert "not a whole number" in wizard.query_one("#error-option-r", Static).render().plain
        wizard.query_one("#option-r", Input).value = "4"
        await pilot.pause(0.6)
        await settle(pilot)
        assert wizard.form.base_model == str(tiny_model)
        assert validate_form(wizard.form) == {}
        assert wizard.form.option_values() == {"epochs": 1, "r": 4}
        preview = wizard.preview
        assert preview is not None, _text(wizard, "#preview-body")
        assert "Time" in _text(wizard, "#preview-body")


async def test_new_job_from_the_datasets_tab_starts_with_the_highlighted_dataset(sandbox, ftm_home):
    add_dataset(ftm_home, "tickets", age_minutes=10)
    add_dataset(ftm_home, "other", n=30)
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("down")  # newest first: "other", then "tickets"
        wizard = await _open_wizard(pilot)
        assert wizard.form.dataset.name == "tickets"


@pytest.mark.expects_tui_error
async def test_no_api_key_is_said_clearly_and_nothing_crashes(ftm_home):
    # No sandbox and no OPENAI_API_KEY (the autouse fixture removes it): the launch is
    # refused before anything is sent, and the message says what to set.
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await _open_wizard(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "OPENAI_API_KEY" in errors[0].message, [n.message for n in errors]
        assert app.screen is wizard and app.is_running


async def test_wizard_shows_the_launch_plans_cutoff_warning_before_confirming(sandbox, ftm_home):
    # The wizard and `ftm launch` ask one use-case (app.jobs.launch.plan_launch): the
    # OpenAI job-creation cutoff (lifecycle.toml: 2027-01-06) is in the preview and in
    # the confirmation, worded as `ftm launch` prints it.
    from datetime import date

    from app.jobs.launch import plan_launch

    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for today, expected in (
            (
                date(2026, 11, 28),
                "OpenAI accepts new fine-tuning jobs until 2027-01-06 (39 days left)",
            ),
            (date(2027, 1, 10), "OpenAI stopped accepting new fine-tuning jobs after 2027-01-06"),
        ):
            wizard = LaunchWizard(today=today)
            await app.push_screen(wizard)
            await settle(pilot)
            await pilot.pause(0.5)  # the preview is debounced
            await settle(pilot)
            form = wizard.form
            plan = plan_launch("openai", form.dataset.id, form.base_model, today=today)
            assert any(expected in w for w in plan.warnings), plan.warnings
            assert wizard.preview.warnings == plan.warnings
            assert expected in _text(wizard, "#preview-body")
            await pilot.press("ctrl+s")
            await settle(pilot)
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert expected in confirm.details
            await pilot.press("n")
            await settle(pilot)
            await pilot.press("escape")
            await settle(pilot)
        assert _jobs() == []


@pytest.mark.expects_tui_error
async def test_wizard_refuses_what_the_provider_refuses_before_confirming(
    sandbox, ftm_home, tiny_model
):
    # plan_launch's problems (provider.validate_spec: here the local provider's option
    # resolution) are shown and block the launch, as `ftm launch` refuses it.
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await _open_wizard(pilot)
        wizard.query_one("#provider", Select).value = "local"
        await settle(pilot)
        wizard.query_one("#base_model_other", Input).value = str(tiny_model)
        wizard.query_one("#method", Select).value = "lora"
        wizard.query_one("#option-warmup_ratio", Input).value = "2"
        await pilot.pause(0.6)
        await settle(pilot)
        assert validate_form(wizard.form) == {}, "the form alone finds nothing to fix"
        refusal = "option warmup_ratio=2.0: must be in [0, 1)"
        assert any(refusal in p for p in wizard.preview.problems), wizard.preview
        assert refusal in _text(wizard, "#preview-body")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is wizard, "no confirmation for a job the provider refuses"
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and refusal in errors[-1].message, [n.message for n in errors]
        assert _jobs() == []
