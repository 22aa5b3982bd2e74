"""The whole workflow in the TUI on the local provider, with real training of a tiny
model built in the test: add -> launch (wizard) -> watch -> evaluate -> promote."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select
from textual.widgets import DataTable, Input, Select

from app.database import get_engine
from app.tui.app import create_app
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.evaluate import EvaluateScreen
from app.tui.screens.launch_wizard import LaunchWizard
from app.tui.screens.promote import PromoteScreen
from db.engine import read_session
from db.models import Alias, EvalRun, Job
from providers.local import demo_data
from tests.tui.helpers import settle

pytestmark = pytest.mark.slow


async def _until(pilot, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.2)


def _all(model):
    with read_session(get_engine()) as session:
        return list(session.exec(select(model)))


async def test_local_workflow_with_the_tiny_model(ftm_home, tmp_path, tiny_model):
    source = tmp_path / "labels.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in demo_data.labelling_examples(96, 1)))
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#add-path", Input).value = str(source)
        app.screen.query_one("#add-name", Input).value = "labels"
        app.screen.query_one("#add-val", Input).value = "0.2"
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: app.screen is app.screen_stack[0], 120, "the intake")

        await pilot.press("n")
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, LaunchWizard)
        wizard.query_one("#provider", Select).value = "local"
        await settle(pilot)
        wizard.query_one("#base_model_other", Input).value = str(tiny_model)
        wizard.query_one("#method", Select).value = "lora"
        for name, value in {
            "epochs": "6",
            "learning_rate": "0.005",
            "batch_size": "8",
            "eval_steps": "12",
            "torch_threads": "2",
        }.items():
            wizard.query_one(f"#option-{name}", Input).value = value
        await pilot.pause(0.6)
        await settle(pilot)
        await _until(pilot, lambda: wizard.preview is not None, 60, "the preview")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await _until(pilot, lambda: bool(_all(Job)), 60, "the launch")

        from app.jobs.poller import Poller

        await pilot.press("j")
        poller = Poller()
        try:
            deadline = time.monotonic() + 300
            while _all(Job)[0].status not in ("succeeded", "failed", "cancelled"):
                assert time.monotonic() < deadline, "the local job did not finish"
                await poller.run_once()
                await pilot.pause(0.5)
        finally:
            poller.close()
        (job,) = _all(Job)
        assert job.status == "succeeded", job.error
        await pilot.press("r")
        await settle(pilot)

        app.query_one("#jobs-table", DataTable).focus()
        await pilot.press("e")
        await settle(pilot)
        evaluate = app.screen
        assert isinstance(evaluate, EvaluateScreen)
        await _until(pilot, lambda: evaluate.plan is not None, 60, "the eval plan")
        assert evaluate.selected_job().id == job.id
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and app.screen.spend_usd is None
        await pilot.press("y")
        await _until(pilot, lambda: app.screen is app.screen_stack[0], 400, "the evaluation")
        assert {r.candidate_kind for r in _all(EvalRun)} == {"zero_shot", "few_shot", "fine_tuned"}

        models = app.query_one("#models-view")
        await _until(pilot, lambda: models.query_one(DataTable).row_count == 3, 60, "leaderboard")
        models.query_one(DataTable).focus()
        for _ in range(3):
            if models.selected().row.kind == "fine_tuned":
                break
            await pilot.press("down")
        await pilot.press("p")
        await _until(
            pilot,
            lambda: isinstance(app.screen, PromoteScreen),
            60,
            f"gates: {[n.message for n in app._notifications]}",
        )
        await pilot.press("y")
        await _until(pilot, lambda: bool(_all(Alias)), 60, "the promotion")
