"""Pilot tests of the Costs view: the comparison and its chart, computed in a worker."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select, Static, TabbedContent
from textual_plotext import PlotextPlot

from app.tui.app import create_app
from app.tui.views.costs import CostsView
from tests.costs.conftest import chat_examples, store_dataset
from tests.tui.helpers import settle


async def test_costs_view_compares_options_and_charts_them(ftm_home):
    store_dataset(ftm_home, "tickets", chat_examples(120))
    messages = []
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 50), message_hook=messages.append) as pilot:
        await settle(pilot)
        # Nothing is estimated until the tab is shown (no work at start-up).
        assert not [m for m in messages if isinstance(m, CostsView.Computed)]
        await pilot.press("c")
        await settle(pilot)
        assert app.query_one(TabbedContent).active == "costs"
        view = app.query_one(CostsView)
        assert view.query_one("#costs-dataset", Select).value == "tickets"
        table = view.query_one(DataTable)
        keys = [row.value for row in table.rows]
        assert keys[0].startswith("baseline:gpt-4o-mini")
        assert any(k.startswith("hosted:") for k in keys) and any(
            k.startswith("local:") for k in keys
        )
        computed = [m for m in messages if isinstance(m, CostsView.Computed)]
        # No figure typed and no gateway traffic: the default, assumed.
        assert computed and computed[-1].query.requests_per_month is None
        assert computed[-1].result.requests_per_month == 10_000
        result = computed[-1].result
        detail = str(view.query_one("#costs-detail", Static).render())
        assert result.option(result.cheapest).label in detail and "Prices as of" in detail
        # One line per option on the chart, plus the break-even markers.
        plot = view.query_one(PlotextPlot)
        lines = plot.plt._active.monitor.x  # plotext keeps the data it will draw
        assert len(lines) >= len(result.options)

        # New traffic: the estimate is recomputed for it.
        rpm = view.query_one("#costs-rpm", Input)
        rpm.value = "2000000"
        await pilot.click("#costs-run")
        await settle(pilot)
        last = [m for m in messages if isinstance(m, CostsView.Computed)][-1]
        assert last.query.requests_per_month == 2_000_000
        assert last.result.requests_per_month == 2_000_000


async def test_costs_view_shows_a_clear_error(ftm_home):
    # A dataset whose token counts are missing and whose files are gone.
    import shutil

    from app.database import get_engine
    from db.engine import write_session
    from db.models import TokenCount

    ds = store_dataset(ftm_home, "broken", chat_examples(20))
    with write_session(get_engine()) as s:
        for row in s.exec(__import__("sqlmodel").select(TokenCount)).all():
            s.delete(row)
    from app.settings import get_settings

    shutil.rmtree(get_settings().file_store.local_path(ds.data_dir))
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("c")
        await settle(pilot)
        error = str(app.query_one("#costs-error", Static).render())
        assert "no tiktoken:o200k_base token counts" in error
        assert f"{ds.data_dir}/train.jsonl is not under the storage root" in " ".join(error.split())


async def test_no_estimate_is_asked_for_while_no_dataset_is_chosen(ftm_home):
    """An empty dataset choice is Select.NULL in Textual 8 (Select.BLANK is a plain False
    there): a choice of local model made before any dataset must not start an estimate of a
    dataset named 'Select.NULL', whose error could land after the real one."""
    messages = []
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 50), message_hook=messages.append) as pilot:
        await pilot.press("c")
        await settle(pilot)
        assert app.query_one("#costs-dataset", Select).value is Select.NULL
        assert not [m for m in messages if isinstance(m, CostsView.Failed)]
        assert "Select.NULL" not in str(app.query_one("#costs-error", Static).render())
