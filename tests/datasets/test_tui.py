"""The Datasets view: the list, and Enter opening a dataset's full report."""

from __future__ import annotations

from textual.widgets import DataTable, Static
from textual.worker import WorkerFailed

from app.datasets.store import add_dataset
from app.tui.app import create_app
from app.tui.views.datasets import DatasetReportScreen
from tests.datasets.helpers import chat, write_jsonl


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass
        await pilot.pause()


def _rendered(static: Static) -> str:
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(static.content)
    return console.export_text()


async def test_enter_on_a_dataset_shows_its_full_report(tmp_path):
    rows = [chat(i, reply=("yes", "no", "maybe")[i % 3]) for i in range(30)] + [chat(1, reply="no")]
    labelled, _ = add_dataset(write_jsonl(tmp_path / "labelled.jsonl", rows), name="labelled")
    add_dataset(write_jsonl(tmp_path / "plain.jsonl", [chat(i) for i in range(12)]), name="plain")

    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        table = app.query_one("#datasets-table", DataTable)
        assert table.row_count == 2
        cells = [str(c) for c in table.get_row(str(labelled.id))]
        assert cells[0] == "labelled" and cells[2] == "31" and cells[-1] == "warnings"
        assert cells[5] == f"{labelled.stats['tokens']['total']:,}"

        table.focus()
        table.move_cursor(row=table.get_row_index(str(labelled.id)))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DatasetReportScreen)
        text = _rendered(app.screen.query_one("#dataset-report", Static))
        for expected in (
            "labelled",
            "Problems by category",
            "duplicate_example",
            "Tokens per example (tiktoken:o200k_base)",
            "Labels",
            "maybe",
            "Duplicates: exact copies: 1",
        ):
            assert expected in text, expected

        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, DatasetReportScreen)
