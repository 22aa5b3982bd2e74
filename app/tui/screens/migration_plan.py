"""The migration plan screen (from the Models tab): every alias whose model stops serving,
or whose provider stops re-training, within the horizon — its deadline, the cheapest
replacement that passes the gates, and that replacement's projected cost.

The plan is `app.promotion.plan.migration_plan`, the same as `ftm models plan`; this
screen only loads it in a thread worker and renders it. ``+``/``-`` move the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.costs.money import usd
from app.database import get_engine
from app.tui.views import unless_torn_down

HORIZON_STEP_MONTHS = 3.0
MIN_HORIZON_MONTHS = 1.0


class MigrationPlanScreen(Screen):
    """The migration plan. Escape goes back to the Models tab."""

    AREA = "Migration plan"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="plan.back"),
        Binding("r", "reload", "Refresh", id="plan.reload"),
        Binding("plus,equals_sign", "horizon(1)", "Longer horizon", id="plan.longer"),
        Binding("minus", "horizon(-1)", "Shorter horizon", id="plan.shorter"),
    ]
    DEFAULT_CSS = """
    MigrationPlanScreen #plan-headline { height: auto; padding: 0 1; text-style: bold; }
    MigrationPlanScreen #plan-table { height: 1fr; }
    MigrationPlanScreen #plan-details { height: auto; max-height: 12; padding: 0 1;
                                        border-top: solid $primary; }
    """

    @dataclass
    class Loaded(Message):
        plan: object  # app.promotion.plan.MigrationPlan

    def __init__(self, horizon_months: float = 12.0) -> None:
        super().__init__()
        self.horizon_months = horizon_months
        self.plan = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("Loading the migration plan…", id="plan-headline")
            yield DataTable(id="plan-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="plan-details")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(
            "alias", "holder", "deadline", "days", "what ends", "replace with", "cost"
        )
        table.focus()
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_horizon(self, direction: int) -> None:
        self.horizon_months = max(
            MIN_HORIZON_MONTHS, self.horizon_months + direction * HORIZON_STEP_MONTHS
        )
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def load(self) -> None:
        from app.promotion.plan import migration_plan

        self.post_message(
            self.Loaded(migration_plan(get_engine(), horizon_months=self.horizon_months))
        )

    @on(Loaded)
    @unless_torn_down
    def _show(self, message: Loaded) -> None:
        from app.promotion.plan import headline

        plan = self.plan = message.plan
        table = self.query_one(DataTable)
        table.clear()
        for entry in plan.entries:
            r = entry.replacement
            table.add_row(
                f"{entry.task}/{entry.alias}",
                f"{entry.model} [{entry.provider}]",
                entry.deadline.day.isoformat(),
                str((entry.deadline.day - plan.today).days),
                entry.deadline.what,
                f"{r.model} [{r.provider}]" if r else "none yet",
                usd(r.projected_usd) if r and r.projected_usd is not None else "-",
                key=f"{entry.task}/{entry.alias}",
            )
        empty = "" if plan.entries else "\nNo alias stops serving or re-training before then."
        self.query_one("#plan-headline").update(Text(headline(plan) + empty))
        self._show_details()

    @on(DataTable.RowHighlighted)
    def _show_details(self, _event=None) -> None:
        from app.promotion.plan import entry_lines

        table = self.query_one(DataTable)
        text = ""
        if self.plan is not None and self.plan.entries and table.cursor_row is not None:
            index = min(max(table.cursor_row, 0), len(self.plan.entries) - 1)
            entry = self.plan.entries[index]
            width = max(40, self.size.width - 2)
            text = "\n".join(entry_lines(entry, self.plan, width=width))
        self.query_one("#plan-details").update(Text(text))  # model ids hold [brackets]
