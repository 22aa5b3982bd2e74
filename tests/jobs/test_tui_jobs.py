"""The Jobs view and the job detail screen, driven with Textual's Pilot."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.tui.app import create_app
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.views.jobs import COLUMNS
from tests.jobs.conftest import MODEL, job_row, make_dataset, poll_until


def _cells(table: DataTable, key: str) -> dict[str, str]:
    return dict(zip(COLUMNS, (str(c) for c in table.get_row(key)), strict=True))


async def _wait_for(pilot, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.05)


def test_jobs_view_lists_jobs_and_opens_the_detail(engine, sandbox, tmp_path):
    make_dataset(engine, tmp_path)
    done = launch_job("openai", "toy", MODEL, hyperparameters={"n_epochs": 2})
    poller = Poller(engine)
    poll_until(poller, lambda: job_row(engine, done.id).status == "succeeded")
    poller.close()

    async def go():
        app = create_app(start_poller=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("j")
            table = app.query_one("#jobs-table", DataTable)
            await _wait_for(pilot, lambda: table.row_count == 1)
            cells = _cells(table, str(done.id))
            assert cells["status"] == "succeeded"
            assert "simulated" in cells["provider"]
            assert "100%" in cells["progress"]
            assert cells["loss"] != "-"  # last loss
            assert cells["est."].startswith("$") and cells["actual"].startswith("$")
            table.focus()
            await pilot.press("enter")
            await _wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            screen = app.screen
            events = screen.query_one("#job-events", DataTable)
            checkpoints = screen.query_one("#job-checkpoints", DataTable)
            await _wait_for(pilot, lambda: events.row_count > 0)
            assert checkpoints.row_count == 2
            assert events.row_count > 20
            summary = str(screen.query_one("#job-summary", Static).render())
            assert "simulated" in summary and "fine-tuned model: ft:" in summary
            assert screen.query_one(PlotextPlot).display
            total = job_row(engine, done.id).total_steps
            assert screen.plotted["train"] == total  # the loss curve has every step
            await pilot.press("escape")
            assert not isinstance(app.screen, JobDetailScreen)

    asyncio.run(go())


def test_the_in_app_poller_drives_a_job_to_the_end(engine, sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("FTM_POLLER__INTERVAL_S", "0.1")
    from app.settings import get_settings

    get_settings.cache_clear()
    make_dataset(engine, tmp_path)
    job = launch_job("openai", "toy", MODEL, hyperparameters={"n_epochs": 1})

    async def go():
        app = create_app(start_poller=True)
        async with app.run_test(size=(140, 40)) as pilot:
            table = app.query_one("#jobs-table", DataTable)
            await _wait_for(
                pilot,
                lambda: (
                    table.row_count == 1 and _cells(table, str(job.id))["status"] == "succeeded"
                ),
                timeout=60,
            )
            status = str(app.query_one("#jobs-poller-status", Static).render())
            assert "poller:" in status

    asyncio.run(go())
    assert job_row(engine, job.id).status == "succeeded"
