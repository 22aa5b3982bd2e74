"""The Jobs table: cost and age columns, filter (/) and sort (s) from the keyboard, and
the incremental update kept for a plain reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import DataTable, Input

from app.database import get_engine
from app.tui.app import create_app
from app.tui.views.jobs import COLUMNS, age_text
from db.engine import write_session
from db.models import Job
from tests.tui.helpers import FIXED_NOW, add_jobs, settle


def _column(table: DataTable, name: str) -> list[str]:
    index = COLUMNS.index(name)
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def test_age_text_uses_one_whole_unit():
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert age_text(at - timedelta(seconds=30), at) == "now"
    assert age_text(at - timedelta(minutes=3, seconds=59), at) == "3m"
    assert age_text(at - timedelta(hours=2, minutes=59), at) == "2h"
    assert age_text(at - timedelta(days=5, hours=23), at) == "5d"
    assert age_text((at - timedelta(hours=1)).replace(tzinfo=None), at) == "1h"  # SQLite
    assert age_text(at + timedelta(minutes=5), at) == "now"  # a clock ahead is not negative
    assert age_text(None, at) == "-"


async def test_cost_and_age_columns_come_from_the_fixed_clock():
    add_jobs(3, status="succeeded")  # created 0, 1 and 2 hours before FIXED_NOW
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert _column(table, "age") == ["2h", "1h", "now"]
        assert _column(table, "est.") == ["$3.25", "$2.25", "$1.25"]
        assert _column(table, "actual") == ["$3.20", "$2.20", "$1.20"]


async def test_filter_by_substring_from_the_keyboard():
    add_jobs(3, status="succeeded")
    add_jobs(2, provider="local", status="running")
    with write_session(get_engine()) as session:
        session.add(
            Job(
                name="tickets_v2",
                provider="openai",
                base_model="gpt-4o-mini",
                method="supervised",
                status="failed",
                created_at=FIXED_NOW,
            )
        )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert table.row_count == 6
        from app.tui.commands import key_actions

        listed = {k.binding_id for k in key_actions(app, app.screen)}
        assert {"jobs.filter", "jobs.sort"} <= listed  # in the help and the palette
        await pilot.press("slash")
        box = app.query_one("#jobs-filter", Input)
        assert box.has_focus and box.display
        await pilot.press(*"local")
        await settle(pilot)
        assert table.row_count == 2
        assert all("local" in p for p in _column(table, "provider"))
        await pilot.press("enter")  # back to the table; the filter stays in view
        assert table.has_focus and box.display
        assert "filter: 'local'" in str(app.query_one("#jobs-view-state").render())

        await pilot.press("slash")
        box.value = ""
        await pilot.press(*"FAIL")  # status, any case
        await settle(pilot)
        assert _column(table, "name") == ["tickets_v2"]
        box.value = ""
        await pilot.press("_")  # literal, not a SQL wildcard
        await settle(pilot)
        assert _column(table, "name") == ["tickets_v2"]
        box.value = ""
        await settle(pilot)
        await pilot.press("escape")
        assert table.has_focus and not box.display  # an empty filter hides again
        assert table.row_count == 6
        # letter keys reach the app again once the table has the focus
        await pilot.press("d")
        await settle(pilot)
        assert app.query_one("TabbedContent").active == "datasets"


async def test_s_cycles_the_sort_column():
    with write_session(get_engine()) as session:
        for i, (name, provider, status) in enumerate(
            [
                ("b-job", "openai", "succeeded"),
                ("a-job", "local", "running"),
                ("c-job", "openai", "failed"),
            ]
        ):
            session.add(
                Job(
                    name=name,
                    provider=provider,
                    base_model="m",
                    method="supervised",
                    status=status,
                    created_at=FIXED_NOW - timedelta(hours=3 - i),
                )
            )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        state = app.query_one("#jobs-view-state")
        assert _column(table, "name") == ["c-job", "a-job", "b-job"]  # newest first
        assert "sort: age" in str(state.render())
        await pilot.press("s")
        await settle(pilot)
        assert [s.split()[0] for s in _column(table, "status")] == [
            "failed",
            "running",
            "succeeded",
        ]
        assert "sort: status" in str(state.render())
        await pilot.press("s")
        await settle(pilot)
        assert _column(table, "name") == ["a-job", "b-job", "c-job"]
        await pilot.press("s")
        await settle(pilot)
        assert [p.split()[0] for p in _column(table, "provider")] == ["local", "openai", "openai"]
        assert _column(table, "name")[1:] == ["c-job", "b-job"]  # newest first within
        await pilot.press("s")
        await settle(pilot)
        assert "sort: age" in str(state.render())


async def test_clicking_a_column_header_sorts_by_it():
    with write_session(get_engine()) as session:
        for i, name in enumerate(["b-job", "a-job", "c-job"]):
            session.add(
                Job(
                    name=name,
                    provider="openai",
                    base_model="m",
                    method="supervised",
                    status="running",
                    created_at=FIXED_NOW - timedelta(hours=3 - i),
                )
            )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert _column(table, "name") == ["c-job", "a-job", "b-job"]

        def header_x(label: str) -> int:  # the screen column of a header's middle
            x = 0
            for column in table.ordered_columns:
                width = column.get_render_width(table)
                if str(column.label) == label:
                    return x + width // 2
                x += width
            raise AssertionError(f"no column {label!r}")

        await pilot.click("#jobs-table", offset=(header_x("name"), 0))
        await settle(pilot)
        assert _column(table, "name") == ["a-job", "b-job", "c-job"]
        assert "sort: name" in str(app.query_one("#jobs-view-state").render())
        await pilot.click("#jobs-table", offset=(header_x("loss"), 0))  # not sortable
        await settle(pilot)
        assert _column(table, "name") == ["a-job", "b-job", "c-job"]
        assert any("cannot sort by 'loss'" in str(n.message) for n in app._notifications)
        await pilot.click("#jobs-table", offset=(header_x("id"), 0))
        await settle(pilot)
        assert _column(table, "name") == ["c-job", "a-job", "b-job"]


async def test_a_plain_reload_updates_only_the_changed_cells():
    (first, _) = add_jobs(2, status="running")
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        updated = []
        original = table.update_cell
        table.update_cell = lambda *a, **kw: (updated.append(a[:2]), original(*a, **kw))
        cleared = []
        original_clear = table.clear
        table.clear = lambda *a, **kw: (cleared.append(1), original_clear(*a, **kw))[1]
        with write_session(get_engine()) as session:
            session.get(Job, first).actual_cost_usd = 9.5
        await pilot.press("r")
        await settle(pilot)
        assert not cleared
        assert [(str(r), c.value if hasattr(c, "value") else c) for r, c in updated] == [
            (str(first), table.ordered_columns[COLUMNS.index("actual")].key.value)
        ]
        assert str(table.get_row(str(first))[COLUMNS.index("actual")]) == "$9.50"


async def test_dataset_and_train_eval_loss_columns():
    from db.models import Dataset

    with write_session(get_engine()) as session:
        dataset = Dataset(
            name="tickets",
            content_hash="h" * 64,
            format="chat",
            source_path="t.jsonl",
            n_examples=20,
            n_train=18,
            n_validation=2,
            val_fraction=0.1,
            split_seed=0,
            verdict="ok",
            data_dir="/tmp/none",
        )
        session.add(dataset)
        session.flush()
        session.add(
            Job(
                name="with_eval",
                provider="local",
                base_model="tiny",
                method="lora",
                status="running",
                dataset_id=dataset.id,
                train_loss=0.5,
                eval_loss=0.75,
                created_at=FIXED_NOW,
            )
        )
        session.add(
            Job(
                name="train_only",
                provider="local",
                base_model="tiny",
                method="lora",
                status="running",
                train_loss=0.25,
                created_at=FIXED_NOW,
            )
        )
    app = create_app(start_poller=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        rows = dict(
            zip(
                _column(table, "name"),
                zip(_column(table, "loss"), _column(table, "dataset"), strict=True),
                strict=True,
            )
        )
        assert rows == {"with_eval": ("0.5000/0.7500", "tickets"), "train_only": ("0.2500", "-")}


# -- start-up: the jobs table first ----------------------------------------------------


async def test_the_loss_column_shows_the_newest_refresh_not_old_metric_points():
    """The table reads the job's own last losses (kept by each refresh), in one query:
    metric points recorded out of order or long ago do not change what it shows."""
    from app.jobs.tracking import apply_refresh
    from providers.types import JobStatus, MetricPoint, Refresh, RemoteJob

    (job_id,) = add_jobs(1, status="running")
    with write_session(get_engine()) as session:
        job = session.get(Job, job_id)
        apply_refresh(
            session,
            job,
            Refresh(
                job=RemoteJob(
                    remote_id=job.remote_id, status=JobStatus.RUNNING, step=30, total_steps=100
                ),
                metrics=[
                    MetricPoint(step=30, train_loss=0.125, eval_loss=0.25),
                    MetricPoint(step=10, train_loss=0.9),
                    MetricPoint(step=20, train_loss=0.5),
                ],
            ),
            now=FIXED_NOW,
        )
    app = create_app(start_poller=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert _column(table, "loss") == ["0.1250/0.2500"]
        assert _column(table, "progress") == ["███░░░░░░░  30%"]


async def test_more_jobs_than_a_page_arrive_a_page_per_refresh():
    from app.tui.views.jobs import PAGE, JobsView

    add_jobs(PAGE + 50, status="succeeded")
    app = create_app(start_poller=False)
    at_first: dict[int, int] = {}

    def hook(message) -> None:  # called at each node the message bubbles through
        if isinstance(message, JobsView.FirstLoadShown) and id(message) not in at_first:
            at_first[id(message)] = app.query_one("#jobs-table", DataTable).row_count

    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert list(at_first.values()) == [PAGE]  # the first page, before the rest
        assert table.row_count == PAGE + 50
        names = _column(table, "name")
        assert names == [f"job-{i:03d}" for i in reversed(range(PAGE + 50))]  # by id, newest first


async def test_a_column_widens_for_a_wider_value_on_a_plain_reload():
    (first, _) = add_jobs(2, status="running")
    with write_session(get_engine()) as session:
        for job_id in (first, _):
            session.get(Job, job_id).train_loss = None
    app = create_app(start_poller=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        loss = table.ordered_columns[COLUMNS.index("loss")]
        assert loss.content_width == len("loss")
        with write_session(get_engine()) as session:
            job = session.get(Job, first)
            job.train_loss, job.eval_loss = 0.1234, 0.5678
        await pilot.press("r")
        await settle(pilot)
        assert _column(table, "loss")[1] == "0.1234/0.5678"
        assert loss.content_width == len("0.1234/0.5678")


def _slow_job_rows(monkeypatch, seconds: float) -> None:
    """The jobs load takes ``seconds`` longer (a big or busy database)."""
    import app.jobs.queries as queries

    real = queries.job_rows

    def slow(*args, **kwargs):
        import time

        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "job_rows", slow)


async def test_the_other_tabs_load_after_the_jobs_are_shown(monkeypatch, ftm_home):
    from app.tui.views.costs import CostsView
    from app.tui.views.datasets import DatasetsView
    from app.tui.views.jobs import JobsView
    from app.tui.views.models import ModelsView
    from tests.tui.helpers import add_dataset

    add_dataset(ftm_home, "tickets")
    add_jobs(2)
    _slow_job_rows(monkeypatch, 0.5)  # the others' loads would be done well before it
    order: list[str] = []
    kinds = {
        JobsView.FirstLoadShown: "jobs",
        DatasetsView.Loaded: "datasets",
        CostsView.DatasetsLoaded: "costs",
        ModelsView.Loaded: "models",
    }

    def hook(message) -> None:
        kind = kinds.get(type(message))
        if kind is not None and kind not in order:
            order.append(kind)

    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        await settle(pilot)
        assert order[0] == "jobs" and set(order) == {"jobs", "datasets", "costs", "models"}
        await pilot.press("d")
        await settle(pilot)
        assert app.query_one("#datasets-table", DataTable).row_count == 1


async def test_opening_another_tab_first_starts_its_load_at_once(monkeypatch, ftm_home):
    from app.tui.views.datasets import DatasetsView
    from app.tui.views.jobs import JobsView
    from tests.tui.helpers import add_dataset

    add_dataset(ftm_home, "tickets")
    _slow_job_rows(monkeypatch, 1.5)
    order: list[str] = []

    def hook(message) -> None:
        name = type(message).__name__
        if isinstance(message, JobsView.FirstLoadShown | DatasetsView.Loaded) and (
            name not in order
        ):
            order.append(name)

    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        await pilot.press("d")  # before the (slow) jobs load is shown
        await settle(pilot)
        assert order[:2] == ["Loaded", "FirstLoadShown"]
        assert app.query_one("#datasets-table", DataTable).row_count == 1


async def test_no_garbage_collection_until_the_jobs_are_shown():
    import gc

    from app.tui.views.jobs import JobsView

    add_jobs(3)
    app = create_app(start_poller=False)
    during: list[bool] = []

    def hook(message) -> None:
        if isinstance(message, JobsView.Loaded):
            during.append(gc.isenabled())

    assert not gc.isenabled()  # from the app's creation: imports and compose included
    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        await settle(pilot)
        assert during[0] is False
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's way


async def test_names_are_shown_as_typed_not_read_as_markup():
    with write_session(get_engine()) as session:
        for name in ("run[/x]", "[bold]loud[/bold]"):
            session.add(
                Job(
                    name=name,
                    provider="openai",
                    base_model="m",
                    method="supervised",
                    status="succeeded",
                    created_at=FIXED_NOW,
                )
            )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        assert sorted(_column(table, "name")) == ["[bold]loud[/bold]", "run[/x]"]
        drawn = "".join(seg.text for y in (1, 2) for seg in table.render_line(y))
        assert "run[/x]" in drawn and "[bold]loud[/bold]" in drawn


async def test_the_poller_starts_once_the_first_load_is_in(monkeypatch):
    from app.tui.views.jobs import JobsView

    add_jobs(2)  # ended: a poll cycle has no provider to call, it is quicker than the load
    _slow_job_rows(monkeypatch, 0.8)
    order: list[str] = []

    def hook(message) -> None:
        name = type(message).__name__
        if isinstance(message, JobsView.FirstLoadComplete | JobsView.PollCycleDone) and (
            name not in order
        ):
            order.append(name)

    app = create_app(start_poller=True)
    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        await settle(pilot)
        for _ in range(100):
            if "PollCycleDone" in order:
                break
            await pilot.pause(0.05)
        assert order == ["FirstLoadComplete", "PollCycleDone"]


@pytest.mark.expects_tui_error  # the broken first load is reported, as it should be
async def test_a_failed_first_load_still_starts_the_poller_and_the_other_tabs(
    monkeypatch, ftm_home
):
    import gc

    import app.jobs.queries as queries
    import app.tui.app as tui_app
    import app.tui.views.jobs as jobs_view
    from app.tui.views.datasets import DatasetsView
    from app.tui.views.jobs import JobsView
    from tests.tui.helpers import add_dataset

    add_dataset(ftm_home, "tickets")

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(queries, "job_rows", broken)
    monkeypatch.setattr(jobs_view, "POLLER_START_DEADLINE_S", 0.3)
    monkeypatch.setattr(tui_app, "STARTUP_DEADLINE_S", 0.3)
    seen: set[str] = set()

    def hook(message) -> None:
        if isinstance(message, JobsView.PollCycleDone | DatasetsView.Loaded):
            seen.add(type(message).__name__)

    app = create_app(start_poller=True)
    async with app.run_test(size=(160, 30), message_hook=hook) as pilot:
        # The later tabs' loads wait for the end of start-up at most as long as the app's
        # own start-up timer: either may come first, so wait for all three.
        for _ in range(100):
            if seen == {"PollCycleDone", "Loaded"} and gc.isenabled():
                break
            await pilot.pause(0.05)
        assert seen == {"PollCycleDone", "Loaded"}
        assert gc.isenabled()


async def test_a_load_arriving_during_teardown_is_dropped_not_an_error():
    """The app may quit while another tab's load runs: its view's children are removed
    first, and the result then has nowhere to go. Any other missing widget is a bug."""
    import pytest
    from textual.css.query import NoMatches

    from app.tui.views.datasets import DatasetsView

    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        view = app.query_one(DatasetsView)
        await view.query_one(DataTable).remove()
        with pytest.raises(NoMatches):  # shown, yet its table is gone: a bug, reported
            view._show(DatasetsView.Loaded([]))
        view.display = False  # as Textual hides a node it is removing
        assert view._show(DatasetsView.Loaded([])) is None
