"""Deployments view: what is deployed, its state, price, cost to date, idle time and
requests served, with idle warnings above the table (and in a notification: a forgotten
endpoint bills by the hour). Keys: s stop, d delete (asks first), r refresh (reads each
live deployment's state from its provider). Thin: app.deployments does the work."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from app.database import get_engine
from app.tui.views import unless_torn_down

STATE_STYLE = {"running": "green", "pending": "yellow", "failed": "red", "deleted": "dim"}
RELOAD_S = 60.0
COLUMNS = ("id", "model", "provider", "kind", "state", "hardware", "$/h", "cost", "idle", "reqs")


class DeploymentsView(Vertical):
    """Every deployment (live first, then ended ones with their costs)."""

    BINDINGS = [
        Binding("s", "stop", "Stop", id="deployments.stop"),
        Binding("d", "delete", "Delete", id="deployments.delete"),
        Binding("r", "refresh", "Refresh", id="deployments.refresh"),
    ]

    @dataclass
    class Loaded(Message):
        infos: list
        warnings: list[str]
        problems: list[str]

    @dataclass
    class Done(Message):
        text: str
        error: bool = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._warned: set[str] = set()
        """Warnings already notified (each once; the line above the table stays)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="deployments-warnings", markup=False)
        yield DataTable(id="deployments-table", cursor_type="row", zebra_stripes=True)
        yield Static(
            "Nothing deployed. Deploy a model with: ftm deploy MODEL|TASK:ALIAS",
            id="deployments-empty",
            classes="empty-hint",
        )

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.load()
        # Cost to date and idle time move with the clock, and a deployment may fall idle
        # while the app is open: re-read the records (not the providers) every minute.
        self.set_interval(RELOAD_S, self.load)

    @work(thread=True, exclusive=True, exit_on_error=False, group="deployments")
    def load(self, read_providers: bool = False) -> None:
        """The rows; with ``read_providers``, each live one's state read afresh first."""
        from app.deployments.idle import idle_warnings
        from app.deployments.service import DeploymentError, list_deployments, refresh

        engine = get_engine()
        problems = []
        if read_providers:
            for info in list_deployments(engine):
                try:
                    refresh(engine, info.id)
                except DeploymentError as exc:
                    problems.append(str(exc))
        live = list_deployments(engine)
        shown = {info.id for info in live}
        ended = [i for i in list_deployments(engine, include_ended=True) if i.id not in shown]
        self.post_message(self.Loaded(live + ended, idle_warnings(engine), problems))

    @on(Loaded)
    @unless_torn_down
    def _show(self, message: Loaded) -> None:
        from app.costs.money import usd
        from app.deployments.durations import format_duration

        table = self.query_one(DataTable)
        table.clear()
        for info in message.infos:
            row = info.row
            table.add_row(
                str(row.id),
                row.model,
                row.provider,
                row.kind,
                Text(row.state, style=STATE_STYLE.get(row.state, "")),
                row.hardware or "-",
                usd(row.usd_per_hour),
                usd(info.cost_usd),
                format_duration(info.idle_s),
                str(row.requests_served),
                key=str(row.id),
            )
        self.query_one("#deployments-empty").display = not message.infos
        banner = self.query_one("#deployments-warnings", Static)
        banner.update("\n".join(f"! {w}" for w in message.warnings))
        banner.display = bool(message.warnings)
        for warning in message.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.app.notify(warning, title="Idle deployment", severity="warning", timeout=10)
        for problem in message.problems:
            self.notify(problem, severity="error", timeout=10, markup=False)

    def _highlighted(self) -> int | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    def action_refresh(self) -> None:
        self.load(read_providers=True)

    def action_stop(self) -> None:
        deployment_id = self._highlighted()
        if deployment_id is not None:
            self._change(deployment_id, "stop")

    def action_delete(self) -> None:
        from app.tui.screens.confirm import ConfirmScreen

        deployment_id = self._highlighted()
        if deployment_id is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._change(deployment_id, "delete")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete deployment {deployment_id}?",
                "It is deleted at its provider for good; its record and costs stay.",
                confirm_label="Delete",
                destructive=True,
            ),
            answered,
        )

    @work(thread=True, exit_on_error=False, group="deployments-change")
    def _change(self, deployment_id: int, what: str) -> None:
        from app.deployments.service import DeploymentError, delete, stop

        engine = get_engine()
        try:
            if what == "stop":
                info = stop(engine, deployment_id, reason="user")
                text = f"Stopped deployment {deployment_id} ({info.row.model})."
            else:
                info = delete(engine, deployment_id)
                text = f"Deleted deployment {deployment_id} ({info.row.model})."
        except DeploymentError as exc:
            self.post_message(self.Done(str(exc), error=True))
            return
        self.post_message(self.Done(text))

    @on(Done)
    def _done(self, message: Done) -> None:
        self.notify(
            message.text, severity="error" if message.error else "information", markup=False
        )
        self.load()
