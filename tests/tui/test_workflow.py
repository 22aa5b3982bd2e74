"""The whole workflow in the TUI on the OpenAI emulator, keys only: add a dataset ->
compare costs -> launch (wizard, confirmation) -> watch it finish (in-app poller) ->
evaluate against the base model -> promote to production."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlmodel import select
from textual.widgets import DataTable, Input, Select, TabbedContent

from app.database import get_engine
from app.tui.app import create_app
from app.tui.screens.add_dataset import AddDatasetScreen
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.evaluate import EvaluateScreen
from app.tui.screens.launch_wizard import LaunchWizard
from app.tui.screens.promote import PromoteScreen
from db.engine import read_session
from db.models import Alias, Dataset, EvalRun, Job, Promotion
from tests.tui.helpers import chat_example, settle

pytestmark = pytest.mark.slow


async def _until(pilot, condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def _one(model):
    with read_session(get_engine()) as session:
        return list(session.exec(select(model)))


async def test_add_estimate_launch_watch_evaluate_promote_on_the_sandbox(
    sandbox, ftm_home, tmp_path, monkeypatch
):
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join(json.dumps(chat_example(i)) + "\n" for i in range(60)))

    # The poller is the real one, driven cycle by cycle here (the in-app loop runs
    # forever; tests/jobs cover it running on its own).
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        # 1. add the dataset
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AddDatasetScreen)
        app.screen.query_one("#add-path", Input).value = str(source)
        app.screen.query_one("#add-name", Input).value = "tickets"
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: not isinstance(app.screen, AddDatasetScreen), what="intake")
        await settle(pilot)
        (dataset,) = _one(Dataset)
        assert app.query_one(TabbedContent).active == "datasets"
        assert app.query_one("#datasets-table", DataTable).row_count == 1

        # 2. compare costs
        await pilot.press("c")
        await settle(pilot)
        await _until(
            pilot,
            lambda: app.query_one("#costs-table", DataTable).row_count > 0,
            what="the cost comparison",
        )

        # 3. launch through the wizard, confirming the spend
        await pilot.press("n")
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, LaunchWizard)
        await _until(pilot, lambda: bool(wizard.form.base_models), what="base models")
        wizard.query_one("#base_model", Select).value = "gpt-4o-mini-2024-07-18"
        await pilot.pause(0.6)
        await settle(pilot)
        await _until(pilot, lambda: wizard.preview is not None, what="the preview")
        assert wizard.form.dataset.id == dataset.id
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.spend_usd == wizard.preview.training_cost_usd
        await pilot.press("y")
        await _until(
            pilot,
            lambda: not isinstance(app.screen, (LaunchWizard, ConfirmScreen)),
            what="the launch",
        )
        (job,) = _one(Job)

        # 4. watch it finish: poll cycles refresh it, the Jobs tab shows it
        from app.jobs.poller import Poller

        await pilot.press("j")
        poller = Poller()
        try:
            deadline = time.monotonic() + 90
            while _one(Job)[0].status != "succeeded":
                assert time.monotonic() < deadline, "the job did not finish"
                await poller.run_once()
                await pilot.pause(0.2)
        finally:
            poller.close()
        await pilot.press("r")
        await pilot.pause(0.5)
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert "succeeded" in str(table.get_row_at(0))

        # 5. evaluate the highlighted job against its base (the sandbox bills nothing)
        table.focus()
        await pilot.press("e")
        await settle(pilot)
        evaluate = app.screen
        assert isinstance(evaluate, EvaluateScreen)
        await _until(pilot, lambda: evaluate.selected_job() is not None, what="finished jobs")
        assert evaluate.selected_job().id == job.id
        await _until(pilot, lambda: evaluate.plan is not None, what="the eval plan")
        assert evaluate.query_one("#eval-task", Input).value == "tickets"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.spend_usd is None  # simulated: nothing billed
        await pilot.press("y")
        await _until(
            pilot,
            lambda: not isinstance(app.screen, (EvaluateScreen, ConfirmScreen)),
            120,
            "the evaluation",
        )
        runs = _one(EvalRun)
        assert {r.candidate_kind for r in runs} == {"zero_shot", "few_shot", "fine_tuned"}
        assert app.query_one(TabbedContent).active == "models"

        # 6. promote the fine-tuned model to production
        models = app.query_one("#models-view")
        await _until(pilot, lambda: models.query_one(DataTable).row_count == 3, what="leaderboard")
        board = models.query_one(DataTable)
        board.focus()
        for _ in range(3):
            if models.selected().row.kind == "fine_tuned":
                break
            await pilot.press("down")
        assert models.selected().row.kind == "fine_tuned"
        await pilot.press("p")
        await _until(
            pilot,
            lambda: isinstance(app.screen, PromoteScreen),
            what=f"gates: {[n.message for n in app._notifications]}",
        )
        await pilot.press("y")
        await _until(pilot, lambda: bool(_one(Alias)), what="the promotion")
        (promotion,) = _one(Promotion)
        assert promotion.alias == "production" and promotion.job_id == job.id
        await asyncio.sleep(0)
        assert app.is_running
