"""Jobs view: every job with live status, progress, last loss; runs the in-app poller.

The poller is an async Textual worker on the app's loop; its blocking work (provider
calls, database writes) runs in the poller's own threads, so the UI never waits. After
each cycle it posts `PollCycleDone` and the table reloads from the database (in a thread
worker, like every other load).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from app.database import get_engine
from db.engine import read_session
from db.models import Job

STATUS_STYLES = {
    "pending": "dim",
    "uploading": "yellow",
    "validating": "yellow",
    "queued": "yellow",
    "running": "cyan",
    "paused": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "dim",
}
RELOAD_EVERY_S = 2.0
POLLER_WRITER_SHARE = 0.5
"""The in-app poller's writer rests as long as it writes (see `Poller`'s writer_share)."""
LOAD_LIMIT = 500
"""Rows the table holds; the filter runs in SQL, so it still finds older jobs."""


def now() -> datetime:
    """The clock the age column is measured against (tests fix it for snapshots)."""
    return datetime.now(UTC)


def age_text(created: datetime | None, at: datetime) -> str:
    """How long ago, in one whole unit: "now" (under a minute), "3m", "2h", "5d"."""
    if created is None:
        return "-"
    if created.tzinfo is None:  # SQLite gives back naive datetimes; they are UTC
        created = created.replace(tzinfo=UTC)
    seconds = max(0.0, (at - created).total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def usd_cell(amount: float | None) -> str:
    if amount is None:
        return "-"
    return f"${amount:,.4f}" if 0 < abs(amount) < 0.01 else f"${amount:,.2f}"


def status_cell(job: Job) -> Text:
    text = Text(job.status, style=STATUS_STYLES.get(job.status, ""))
    if job.stalled:
        text.append(" stalled", style="bold red")
    return text


def progress_cell(job: Job) -> str:
    from app.jobs.queries import progress_fraction

    frac = progress_fraction(job)
    if frac is None:
        return "-"
    filled = round(frac * 10)
    return f"{'█' * filled}{'░' * (10 - filled)} {frac:4.0%}"


COLUMNS = (
    "id",
    "name",
    "status",
    "progress",
    "loss",
    "est.",
    "actual",
    "age",
    "provider",
    "model",
    "dataset",
    "remote id",
)
"""Most telling first: at 80 columns all up to the age fit; the table scrolls sideways
for the provider, the (long) model name, the dataset and the remote id. "loss" is the
last train loss, then the last eval loss where the job has one."""


HEADER_ORDERS = {
    "id": "age",
    "name": "name",
    "status": "status",
    "age": "age",
    "provider": "provider",
}
"""The column headers that sort when clicked, and the `list_jobs` order each means (ids
grow with age, so "id" is newest first like "age")."""


def loss_text(j: Job) -> str:
    if j.train_loss is None and j.eval_loss is None:
        return "-"
    train = f"{j.train_loss:.4f}" if j.train_loss is not None else "-"
    return train if j.eval_loss is None else f"{train}/{j.eval_loss:.4f}"


def _cells(j: Job, at: datetime, dataset_names: dict[int, str] | None = None) -> tuple:
    """The table cells of one job (built in the loading thread)."""
    dataset = (dataset_names or {}).get(j.dataset_id) if j.dataset_id is not None else None
    provider = Text(j.provider)
    if j.simulated:
        provider.append(" simulated", style="magenta")
    return (
        str(j.id),
        j.name,
        status_cell(j),
        progress_cell(j),
        loss_text(j),
        usd_cell(j.estimated_cost_usd),
        usd_cell(j.actual_cost_usd),
        age_text(j.created_at, at),
        provider,
        j.base_model,
        dataset or "-",
        j.remote_id or "-",
    )


class JobsView(Vertical):
    """The Jobs tab."""

    BINDINGS = [
        Binding("enter", "open_job", "Details", id="jobs.open", show=False),
        Binding("r", "reload", "Refresh", id="jobs.reload"),
        Binding("slash", "filter", "Filter", id="jobs.filter", key_display="/"),
        Binding("s", "cycle_sort", "Sort", id="jobs.sort"),
        Binding("escape", "leave_filter", "Back to table", id="jobs.leave_filter", show=False),
    ]
    DEFAULT_CSS = """
    JobsView #jobs-filter { height: 1; border: none; padding: 0 1; display: none; }
    JobsView #jobs-filter:focus { border: none; }
    JobsView #jobs-filter.active { display: block; }
    """

    @dataclass
    class Loaded(Message):
        jobs: list[Job]
        rows: list[tuple[str, tuple]] | None = None
        """(row key, cells) per job, formatted in the worker thread."""
        query: tuple[str, str] | None = None
        """(search, order) the rows were loaded for; a load for an older one is dropped."""

    @dataclass
    class PollCycleDone(Message):
        """The in-app poller finished a cycle."""

        report: object

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.search = ""
        self.order = "age"

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: name, provider, model or status (enter/esc: back)",
            id="jobs-filter",
        )
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No jobs yet. Press n to launch one, or run: ftm launch --dataset NAME --model MODEL",
            id="jobs-empty",
            classes="empty-hint",
        )
        yield Static("", id="jobs-poller-status", classes="empty-hint")
        yield Static("", id="jobs-view-state", classes="empty-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._columns = table.add_columns(*COLUMNS)
        self._shown: dict[str, tuple] = {}
        self._show_state()
        self.reload_jobs()
        self.set_interval(RELOAD_EVERY_S, self.reload_jobs)
        if getattr(self.app, "start_poller", False):
            self.run_poller()

    def action_reload(self) -> None:
        self.reload_jobs()

    # -- filter and sort ----------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter box and type into it; the table follows as you type."""
        box = self.query_one("#jobs-filter", Input)
        box.add_class("active")
        box.focus()

    def action_leave_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        if box.has_focus:
            self._back_to_table()

    @on(Input.Changed, "#jobs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.search = event.value
        self._show_state()
        self.reload_jobs()

    @on(Input.Submitted, "#jobs-filter")
    def _filter_submitted(self) -> None:
        self._back_to_table()

    def _back_to_table(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.set_class(bool(box.value), "active")  # an active filter stays in view
        self.query_one(DataTable).focus()

    def action_cycle_sort(self) -> None:
        """Sort by the next of: age (newest first), status, name, provider."""
        from app.jobs.queries import JOB_ORDERS

        self.order = JOB_ORDERS[(JOB_ORDERS.index(self.order) + 1) % len(JOB_ORDERS)]
        self._show_state()
        self.reload_jobs()

    @on(DataTable.HeaderSelected, "#jobs-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column header sorts by it, where the database can."""
        label = str(event.label)
        order = HEADER_ORDERS.get(label)
        if order is None:
            self.notify(
                f"The jobs table cannot sort by {label!r}; click one of: "
                f"{', '.join(HEADER_ORDERS)} (or press s)",
                timeout=4,
            )
            return
        self.order = order
        self._show_state()
        self.reload_jobs()

    def _show_state(self) -> None:
        filtered = f" · filter: {self.search!r}" if self.search.strip() else ""
        self.query_one("#jobs-view-state", Static).update(
            f"sort: {self.order} (s){filtered}  ·  / filter"
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-load")
    def reload_jobs(self) -> None:
        from app.jobs.queries import dataset_names, list_jobs

        search, order = self.search, self.order
        with read_session(get_engine()) as session:
            rows = list_jobs(session, limit=LOAD_LIMIT, search=search, order=order)
            names = dataset_names(session, {j.dataset_id for j in rows})
        at = now()
        self.post_message(
            self.Loaded(rows, [(str(j.id), _cells(j, at, names)) for j in rows], (search, order))
        )

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        if message.query is not None and message.query != (self.search, self.order):
            return  # typed on or re-sorted since this load started; a newer one is coming
        table = self.query_one(DataTable)
        rows = (
            message.rows
            if message.rows is not None
            else [(str(j.id), _cells(j, now())) for j in message.jobs]
        )
        self.query_one("#jobs-empty").display = not rows and not self.search.strip()
        if [key for key, _ in rows] == list(self._shown):
            # Same jobs in the same order (the usual reload): update only the cells that
            # changed, so a reload every few seconds costs the event loop next to nothing.
            for key, cells in rows:
                old = self._shown[key]
                for column, value, before in zip(self._columns, cells, old, strict=True):
                    if value != before:
                        table.update_cell(key, column, value)
                self._shown[key] = cells
            return
        selected = None
        if table.row_count and table.cursor_row is not None:
            try:
                selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:  # the table changed under the cursor; start at the top
                selected = None
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        self._shown = dict(rows)
        if selected is not None and str(selected) in self._shown:
            table.move_cursor(row=table.get_row_index(str(selected)))

    @on(DataTable.RowSelected, "#jobs-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self._open(int(event.row_key.value))

    def action_open_job(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            self._open(int(key))

    def _open(self, job_id: int) -> None:
        from app.tui.screens.job_detail import JobDetailScreen

        self.app.push_screen(JobDetailScreen(job_id))

    # -- the in-app poller ----------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="poller")
    async def run_poller(self) -> None:
        import asyncio

        from app.jobs.poller import Poller

        loop = asyncio.get_running_loop()
        # opening the database may migrate: in a thread. The poller's writes are ORM work
        # that holds the GIL; capped at half the time, the UI thread always gets its turn.
        poller = await loop.run_in_executor(None, partial(Poller, writer_share=POLLER_WRITER_SHARE))
        try:
            await poller.run(on_cycle=lambda r: self.post_message(self.PollCycleDone(r)))
        finally:
            poller.close()

    @on(PollCycleDone)
    def _cycle_done(self, message: PollCycleDone) -> None:
        r = message.report
        self.query_one("#jobs-poller-status", Static).update(
            f"poller: {r.jobs} active, {r.refreshed} refreshed, {r.errors} errors "
            f"({r.duration_s:.1f} s)"
        )
        self.reload_jobs()
