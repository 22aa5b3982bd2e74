"""Add-dataset and evaluate screens: bad input is said where it is, nothing crashes."""

from __future__ import annotations

from textual.widgets import Input, Static

from app.tui.app import create_app
from app.tui.screens.add_dataset import AddDatasetScreen
from app.tui.screens.evaluate import EvaluateScreen
from tests.tui.helpers import settle


async def test_add_dataset_reports_a_missing_file_and_a_broken_one_inline(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AddDatasetScreen)
        screen.query_one("#add-path", Input).value = str(tmp_path / "nope.jsonl")
        await pilot.press("ctrl+s")
        await settle(pilot)
        status = screen.query_one("#add-status", Static)
        assert "no such file" in status.render().plain
        screen.query_one("#add-path", Input).value = str(broken)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen, "stays open to fix the file"
        text = status.render().plain
        assert "was not added" in text and "line 1" in text and "ftm data check" in text
        assert not [n for n in app._notifications if n.severity == "error"], "said once, inline"
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


async def test_evaluate_without_a_finished_job_says_so():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        assert "Choose a job" in screen.query_one("#eval-plan", Static).render().plain
