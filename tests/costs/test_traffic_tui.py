"""The Costs tab prices the measured traffic, says so, and shows each alias's month."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import Input, Static

from app.tui.app import create_app
from app.tui.views.costs import CostsView
from tests.costs.conftest import chat_examples, store_dataset
from tests.costs.gateway_rows import add_eval_run, log_requests
from tests.costs.test_traffic import ten_days_of_traffic
from tests.tui.helpers import settle


async def test_costs_tab_uses_measured_traffic_and_a_typed_figure_wins(ftm_home):
    ds = store_dataset(ftm_home, "tickets", chat_examples(40))
    add_eval_run("tickets", ds.id)
    now = datetime.now(UTC)
    ten_days_of_traffic(end=now)
    log_requests([now], prompt_tokens=200, completion_tokens=20)  # surely this month
    messages = []
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 50), message_hook=messages.append) as pilot:
        await pilot.press("c")
        await settle(pilot)
        view = app.query_one(CostsView)
        result = [m for m in messages if isinstance(m, CostsView.Computed)][-1].result
        assert result.traffic["source"] == "measured"
        assert result.traffic["requests"] == 101
        detail = str(view.query_one("#costs-detail", Static).render())
        assert "measured from the gateway log over the last 10 days" in detail
        assert "prompt 200 tokens, reply 20" in detail
        # The month's money of the task's alias (this month's part of the ten days).
        assert "This month tickets:production:" in detail and "/1k req" in detail

        view.query_one("#costs-rpm", Input).value = "2000000"
        await pilot.click("#costs-run")
        await settle(pilot)
        last = [m for m in messages if isinstance(m, CostsView.Computed)][-1].result
        assert last.traffic["source"] == "assumed" and last.requests_per_month == 2_000_000
        detail = str(view.query_one("#costs-detail", Static).render())
        assert "Traffic assumed: 2,000,000 requests/month, the figure given" in detail
