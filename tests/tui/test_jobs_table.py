"""The Jobs table: cost and age columns, filter (/) and sort (s) from the keyboard, and
the incremental update kept for a plain reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
        session.add(Job(name="tickets_v2", provider="openai", base_model="gpt-4o-mini",
                        method="supervised", status="failed", created_at=FIXED_NOW))
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
                [("b-job", "openai", "succeeded"), ("a-job", "local", "running"),
                 ("c-job", "openai", "failed")]):
            session.add(Job(name=name, provider=provider, base_model="m", method="supervised",
                            status=status, created_at=FIXED_NOW - timedelta(hours=3 - i)))
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
            "failed", "running", "succeeded"]
        assert "sort: status" in str(state.render())
        await pilot.press("s")
        await settle(pilot)
        assert _column(table, "name") == ["a-job", "b-job", "c-job"]
        await pilot.press("s")
        await settle(pilot)
        assert [p.split()[0] for p in _column(table, "provider")] == [
            "local", "openai", "openai"]
        assert _column(table, "name")[1:] == ["c-job", "b-job"]  # newest first within
        await pilot.press("s")
        await settle(pilot)
        assert "sort: age" in str(state.render())


async def test_clicking_a_column_header_sorts_by_it():
    with write_session(get_engine()) as session:
        for i, name in enumerate(["b-job", "a-job", "c-job"]):
            session.add(Job(name=name, provider="openai", base_model="m", method="supervised",
                            status="running", created_at=FIXED_NOW - timedelta(hours=3 - i)))
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
            (str(first), table.ordered_columns[COLUMNS.index("actual")].key.value)]
        assert str(table.get_row(str(first))[COLUMNS.index("actual")]) == "$9.50"


async def test_dataset_and_train_eval_loss_columns():
    from db.models import Dataset

    with write_session(get_engine()) as session:
        dataset = Dataset(name="tickets", content_hash="h" * 64, format="chat", source_path="t.jsonl",
                          n_examples=20, n_train=18, n_validation=2, val_fraction=0.1,
                          split_seed=0, verdict="ok", data_dir="/tmp/none")
        session.add(dataset)
        session.flush()
        session.add(Job(name="with_eval", provider="local", base_model="tiny", method="lora",
                        status="running", dataset_id=dataset.id, train_loss=0.5,
                        eval_loss=0.75, created_at=FIXED_NOW))
        session.add(Job(name="train_only", provider="local", base_model="tiny", method="lora",
                        status="running", train_loss=0.25, created_at=FIXED_NOW))
    app = create_app(start_poller=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#jobs-table", DataTable)
        rows = dict(zip(_column(table, "name"), zip(_column(table, "loss"),
                                                     _column(table, "dataset"), strict=True),
                        strict=True))
        assert rows == {"with_eval": ("0.5000/0.7500", "tickets"), "train_only": ("0.2500", "-")}
