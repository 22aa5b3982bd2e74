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

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from app.costs.money import usd
from app.database import get_engine
from app.jobs.queries import JobRow
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
POLLER_START_DEADLINE_S = 5.0
"""The poller starts after the first load is shown, or this long after mounting."""
POLLER_WRITER_SHARE = 0.5
"""The in-app poller's writer rests as long as it writes (see `Poller`'s writer_share)."""
LOAD_LIMIT = 500
"""Rows the table holds; the filter runs in SQL, so it still finds older jobs."""
PAGE = 100
"""Rows added to the table at a time: a first page fills any terminal at once, the rest
follow a page per screen refresh, so the UI never measures 500 new rows in one go."""


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
    return usd(amount)


def status_cell(job: Job | JobRow) -> Text:
    text = Text(job.status, style=STATUS_STYLES.get(job.status, ""))
    if job.stalled:
        text.append(" stalled", style="bold red")
    return text


def progress_cell(job: Job | JobRow) -> str:
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


def loss_text(j: Job | JobRow) -> str:
    if j.train_loss is None and j.eval_loss is None:
        return "-"
    train = f"{j.train_loss:.4f}" if j.train_loss is not None else "-"
    return train if j.eval_loss is None else f"{train}/{j.eval_loss:.4f}"


def _text(value: str) -> Text:
    """A plain cell: Text, not a str, which the table would parse as markup on the UI
    thread at every render (and choke on, for a job named like "run[/x]")."""
    return Text(value, no_wrap=True, end="")


def _cells(j: JobRow, age: str) -> tuple:
    """The table cells of one job (built in the loading thread)."""
    provider = Text(j.provider)
    if j.simulated:
        provider.append(" simulated", style="magenta")
    return (
        _text(str(j.id)),
        _text(j.name),
        status_cell(j),
        _text(progress_cell(j)),
        _text(loss_text(j)),
        _text(usd_cell(j.estimated_cost_usd)),
        _text(usd_cell(j.actual_cost_usd)),
        _text(age),
        provider,
        _text(j.base_model),
        _text(j.dataset or "-"),
        _text(j.remote_id or "-"),
    )


def _cell_width(value: object) -> int:
    return cell_len(value.plain if isinstance(value, Text) else str(value))


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
        jobs: list[JobRow]
        rows: list[tuple[str, tuple]]
        """(row key, cells) per job, formatted in the worker thread."""
        query: tuple[str, str]
        """(search, order) the rows were loaded for; a load for an older one is dropped."""
        formatted: dict[int, tuple[JobRow, str, tuple]]
        """Per job id: the row, its age text and its cells, for the next load to reuse."""

    @dataclass
    class FirstLoadShown(Message):
        """The first page of the first load is in the table: what the user came to see."""

    @dataclass
    class FirstLoadComplete(Message):
        """All of the first load is in the table and drawn: start-up is over (the app
        turns to the other tabs, the view starts the poller)."""

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
        """Cells per row key, of the rows in the table."""
        self._pending: list[tuple[str, tuple]] = []
        """Rows of the last load still to add (a page per refresh)."""
        self._formatted: dict[int, tuple[JobRow, str, tuple]] = {}
        self._reselect: str | None = None
        """The job the cursor was on before the table was started again."""
        self._first_shown = False
        self._first_complete = False
        self._poller_started = False
        self._show_state()
        self.reload_jobs()
        self.set_interval(RELOAD_EVERY_S, self.reload_jobs)
        self.set_timer(POLLER_START_DEADLINE_S, self._start_poller)

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
        from app.jobs.queries import job_rows

        search, order = self.search, self.order
        with read_session(get_engine()) as session:
            rows = job_rows(session, limit=LOAD_LIMIT, search=search, order=order)
        at = now()
        known = self._formatted  # the last load shown; replaced (never changed) by _show
        formatted: dict[int, tuple[JobRow, str, tuple]] = {}
        for row in rows:
            age = age_text(row.created_at, at)
            before = known.get(row.id)
            if before is not None and before[0] == row and before[1] == age:
                formatted[row.id] = before  # unchanged: the same cells, nothing to redraw
            else:
                formatted[row.id] = (row, age, _cells(row, age))
        cells = [(str(row.id), formatted[row.id][2]) for row in rows]
        self.post_message(self.Loaded(rows, cells, (search, order), formatted))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        if message.query != (self.search, self.order):
            return  # typed on or re-sorted since this load started; a newer one is coming
        self._formatted = message.formatted
        rows = message.rows
        self.query_one("#jobs-empty").display = not rows and not self.search.strip()
        shown = list(self._shown)
        if [key for key, _ in rows[: len(shown)]] == shown:
            # The same jobs first, in the same order (the usual reload), maybe more after:
            # update only the cells that changed, so a reload costs the loop next to nothing.
            self._update_cells(rows[: len(shown)])
            self._pending = rows[len(shown) :]
        else:
            self._replace_rows(rows)
        self._add_page()
        if not self._first_shown:
            self._first_shown = True
            self.post_message(self.FirstLoadShown())

    def _update_cells(self, rows: list[tuple[str, tuple]]) -> None:
        table = self.query_one(DataTable)
        for key, cells in rows:
            old = self._shown[key]
            if cells is old:
                continue
            for column, value, before in zip(self._columns, cells, old, strict=True):
                if value != before:
                    # A column grows for a wider cell; a narrower one leaves it as it is
                    # (finding the new widest would measure every cell of the column).
                    wider = _cell_width(value) > table.columns[column].content_width
                    table.update_cell(key, column, value, update_width=wider)
            self._shown[key] = cells

    def _replace_rows(self, rows: list[tuple[str, tuple]]) -> None:
        """Other jobs or another order: start the table again, keeping the cursor on the
        job it was on where that job is still listed."""
        table = self.query_one(DataTable)
        selected = None
        if table.row_count and table.cursor_row is not None:
            try:
                selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:  # the table changed under the cursor; start at the top
                selected = None
        table.clear()
        self._shown = {}
        self._pending = rows
        self._reselect = None if selected is None else str(selected)

    def _add_page(self) -> None:
        """Add the next page of pending rows; the next one after the screen refreshes."""
        table = self.query_one(DataTable)
        page, self._pending = self._pending[:PAGE], self._pending[PAGE:]
        for key, cells in page:
            table.add_row(*cells, key=key)
            self._shown[key] = cells
        if self._reselect is not None and self._reselect in self._shown:
            table.move_cursor(row=table.get_row_index(self._reselect))
            self._reselect = None
        if self._pending:
            self.call_after_refresh(self._add_page)
        elif not self._first_complete:
            self._first_complete = True
            self.call_after_refresh(self._complete_first_load)

    def _complete_first_load(self) -> None:
        self._start_poller()
        self.post_message(self.FirstLoadComplete())

    def _start_poller(self) -> None:
        """Start the in-app poller once: after the first load (its first cycle is the
        heaviest, all active jobs and its imports, and would slow the first rows down), or
        after `POLLER_START_DEADLINE_S` should that load fail."""
        if getattr(self.app, "start_poller", False) and not self._poller_started:
            self._poller_started = True
            self.run_poller()

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
