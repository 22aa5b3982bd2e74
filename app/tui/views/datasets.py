"""Datasets view: every dataset with size, token totals and verdict; Enter opens its full
report (problem counts, token distribution, duplicates, labels)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.database import get_engine
from app.tui.views import unless_torn_down
from db.engine import read_session
from db.models import Dataset

VERDICT_STYLE = {"ok": "green", "warnings": "yellow", "errors": "red"}


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return "-"


class DatasetsView(Vertical):
    """Lists datasets; loads them in a worker thread so the event loop never blocks."""

    BINDINGS = [
        Binding("r", "refresh", "Refresh", id="datasets.refresh"),
    ]

    @dataclass
    class Loaded(Message):
        datasets: list[Dataset]

    def compose(self) -> ComposeResult:
        yield DataTable(id="datasets-table", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No datasets yet. Add one with: ftm data add FILE",
            id="datasets-empty",
            classes="empty-hint",
        )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "format", "examples", "train/val", "size", "tokens", "verdict")
        self.refresh_datasets()

    def action_refresh(self) -> None:
        self.refresh_datasets()

    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets")
    def refresh_datasets(self) -> None:
        from app.datasets.store import list_datasets

        with read_session(get_engine()) as session:
            rows = list_datasets(session)
        self.post_message(self.Loaded(rows))

    @on(Loaded)
    @unless_torn_down
    def _show(self, message: Loaded) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for d in message.datasets:
            stats = d.stats or {}
            total = (stats.get("tokens") or {}).get("total")
            table.add_row(
                d.name,
                d.format,
                f"{d.n_examples:,}",
                f"{d.n_train:,}/{d.n_validation:,}",
                _size(stats.get("size_bytes")),
                f"{total:,}" if total is not None else "-",
                Text(d.verdict, style=VERDICT_STYLE.get(d.verdict, "")),
                key=str(d.id),
            )
        self.query_one("#datasets-empty").display = not message.datasets

    @on(DataTable.RowSelected, "#datasets-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(DatasetReportScreen(int(event.row_key.value)))


class DatasetReportScreen(Screen):
    """The full report of dataset ``dataset_id``, as `ftm data show` prints it."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="dataset_report.back")]
    DEFAULT_CSS = """
    DatasetReportScreen #dataset-report { padding: 0 1; }
    """

    @dataclass
    class Loaded(Message):
        dataset: Dataset

    def __init__(self, dataset_id: int) -> None:
        super().__init__()
        self.dataset_id = dataset_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="dataset-report-scroll"):
            yield Static("Loading…", id="dataset-report")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset-report")
    def load(self) -> None:
        from app.datasets.store import get_dataset

        with read_session(get_engine()) as session:
            dataset = get_dataset(session, self.dataset_id)
        self.post_message(self.Loaded(dataset))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        from rich.console import Group

        from app.datasets.render import report_renderable

        d = message.dataset
        self.sub_title = f"dataset {d.name}"
        header = Text.assemble(
            (f"{d.name}", "bold"),
            f"  id {d.id}  ",
            (d.content_hash[:12], "dim"),
            f"  stored in {d.data_dir}\n",
        )
        body = report_renderable(d.report) if d.report else Text("No report stored.")
        self.query_one("#dataset-report", Static).update(Group(header, body))
