"""Datasets view: every dataset with size, token totals and verdict."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from app.database import get_engine
from db.engine import read_session
from db.models import Dataset


class DatasetsView(Vertical):
    """Lists datasets; loads them in a worker thread so the event loop never blocks."""

    @dataclass
    class Loaded(Message):
        datasets: list[Dataset]

    def compose(self) -> ComposeResult:
        yield DataTable(id="datasets-table", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No datasets yet. Add one with: ftm data add FILE", id="datasets-empty",
            classes="empty-hint",
        )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "format", "examples", "train/val", "tokens", "verdict")
        self.refresh_datasets()

    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets")
    def refresh_datasets(self) -> None:
        from sqlmodel import select

        with read_session(get_engine()) as session:
            rows = list(session.exec(select(Dataset).order_by(Dataset.created_at.desc())))
        self.post_message(self.Loaded(rows))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for d in message.datasets:
            total = (d.stats or {}).get("tokens", {}).get("total")
            table.add_row(
                d.name, d.format, str(d.n_examples), f"{d.n_train}/{d.n_validation}",
                f"{total:,}" if total is not None else "-", d.verdict, key=str(d.id),
            )
        self.query_one("#datasets-empty").display = not message.datasets
