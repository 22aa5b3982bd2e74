"""Costs respect the calendar: an option whose model stops serving inside the horizon is
priced only for the months it serves, marked "stops at month N" and left out of the
cheapest, in `ftm estimate` (text and JSON), the launch preview and the Costs tab alike.

The observation behind it: on 2026-12-01 `ftm estimate tickets` at 10,000 requests/month
called gpt-4o-mini-2024-07-18 fine-tuned the cheapest over 12 months while saying that
model stops serving in 44 days (2027-01-14). The date is fixed with FTM_TODAY.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from app.costs.compare import compare
from app.costs.launch import estimate_for_launch
from app.database import get_engine
from app.lifecycle import DAYS_PER_MONTH
from app.tui.screens.launch_backend import preview_from_estimate
from db.engine import read_session
from tests.costs.conftest import chat_examples
from tests.costs.test_cli import ftm

TODAY = "2026-12-01"
MINI = "gpt-4o-mini-2024-07-18"
SERVED = 44 / DAYS_PER_MONTH  # 2026-12-01 -> 2027-01-14, in months
STOPPING = {
    "serves_until": "2027-01-14",
    "months_served": round(SERVED, 3),
    "stops_at_month": 2,
    "serves_whole_horizon": False,
}


@pytest.fixture
def tickets(make_dataset):
    return make_dataset("tickets", chat_examples(200))


def test_tickets_json_prices_the_months_served_and_leaves_stopping_options_out(tickets):
    out = ftm(
        "estimate", "tickets", "--requests-per-month", "10000", "--json", env={"FTM_TODAY": TODAY}
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    options = {o["key"]: o for o in data["options"]}
    baseline, hosted = options[f"baseline:{MINI}"], options[f"hosted:{MINI}"]
    local = next(o for o in data["options"] if o["kind"] == "local")
    assert baseline["serving"] == STOPPING and hosted["serving"] == STOPPING
    assert local["serving"]["serves_whole_horizon"] is True
    assert local["serving"]["stops_at_month"] is None
    # Priced over the 1.45 months it serves, not 12.
    assert hosted["horizon_usd"] == pytest.approx(
        hosted["one_time_usd"] + hosted["per_request_usd"] * 10_000 * SERVED
    )
    assert baseline["horizon_usd"] == pytest.approx(baseline["per_request_usd"] * 10_000 * SERVED)
    # The rule changes the answer: the fine-tune has the lowest total, yet it cannot be
    # the cheapest over a year it does not serve.
    assert min(data["options"], key=lambda o: o["horizon_usd"])["key"] == hosted["key"]
    assert data["cheapest"] == local["key"]
    # Azure serves the same model until 2027-10-01: month 10, also inside the horizon.
    azure = options[f"hosted:{MINI}@azure"]
    assert azure["serving"]["stops_at_month"] == 10
    assert data["stopping"] == [baseline["key"], hosted["key"], azure["key"]]
    assert "left out of the cheapest" in data["horizon_rule"]
    assert "stops at month 2 of 12" in " ".join(hosted["warnings"])
    assert data["today"] == TODAY


def test_tickets_text_says_which_options_stop_and_what_is_cheapest(tickets):
    out = ftm("estimate", "tickets", "--requests-per-month", "10000", env={"FTM_TODAY": TODAY})
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # rich wraps long lines
    assert f"Cheapest over 12 months at this traffic: {MINI} fine-tuned" not in text
    assert "Cheapest over 12 months at this traffic: Llama-3.1-8B qlora" in text
    assert (
        f"left out because they stop serving inside the horizon: {MINI} 4-shot (stops at "
        f"month 2), {MINI} fine-tuned on OpenAI (stops at month 2), {MINI} fine-tuned on Azure OpenAI "
        "(stops at month 10)"
    ) in text
    assert "(m2)" in text and "(mN): stops serving in month N" in text
    assert "stops at month 2 of 12 (serves until 2027-01-14): priced for 1.4 months" in text


def test_a_horizon_inside_the_serving_window_keeps_every_option(tickets):
    with read_session(get_engine()) as s:
        r = compare(
            s, tickets, requests_per_month=10_000, horizon_months=1, today=date.fromisoformat(TODAY)
        )
    assert r.stopping == []
    assert r.cheapest == min(r.options, key=lambda o: o.horizon_usd).key == f"hosted:{MINI}"
    assert "left out" not in r.verdict()


def test_the_launch_preview_says_what_the_comparison_says(tickets):

    today = date.fromisoformat(TODAY)
    estimate = estimate_for_launch(
        dataset_id=tickets.id, provider="openai", base_model=MINI, today=today
    )
    with read_session(get_engine()) as s:
        hosted = compare(s, tickets, today=today).option(f"hosted:{MINI}")
    assert estimate.serving == hosted.serving == STOPPING
    assert estimate.serving_note in " ".join(hosted.warnings)
    rows = dict(preview_from_estimate(estimate).lines)
    assert rows["Serving"] == estimate.serving_note
    assert rows["Serving"].startswith("stops at month 2 of 12 (serves until 2027-01-14)")


async def test_the_costs_tab_shows_the_same_horizon_facts(tickets, monkeypatch):
    from app.tui.app import create_app
    from app.tui.views.costs import CostsView
    from tests.tui.helpers import settle

    monkeypatch.setenv("FTM_TODAY", TODAY)
    messages: list = []
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 50), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        view = app.query_one(CostsView)
        result = [m for m in messages if isinstance(m, CostsView.Computed)][-1].result
        hosted = result.option(f"hosted:{MINI}")
        assert hosted.serving == STOPPING
        detail = " ".join(str(view.query_one("#costs-detail", Static).render()).split())
        assert result.verdict() in detail
        assert "Cheapest over 12 months at this traffic: Llama-3.1-8B" in detail
        assert f"{MINI} fine-tuned on OpenAI (stops at month 2)" in detail
        table = view.query_one(DataTable)
        cell = str(table.get_cell(f"hosted:{MINI}", "horizon"))
        assert cell.endswith("(m2)")
        # On the chart the two stopping options' lines end where they stop serving.
        plotted = view.query_one(PlotextPlot).plt._active.monitor.x  # plotext's stored data
        ends = [max(xs) for xs in plotted[: len(result.options)]]  # then the break-evens
        assert sum(end <= 10_000 * SERVED for end in ends) == 2
        assert max(ends) == pytest.approx(120_000)
        starred = [str(table.get_cell(k.value, "option")) for k in table.rows]
        assert [c for c in starred if c.startswith("* ")] == [
            "* " + result.option(result.cheapest).label
        ]
    # The launch preview, asked the same day, states the same window.
    estimate = estimate_for_launch(dataset_id=tickets.id, provider="openai", base_model=MINI)
    assert estimate.serving == hosted.serving


def test_a_model_already_retired_is_priced_at_its_one_time_cost_only(tickets):
    with read_session(get_engine()) as s:
        r = compare(s, tickets, provider="openai", today=date(2027, 2, 1))
    hosted = r.option(f"hosted:{MINI}")
    assert hosted.serving["stops_at_month"] == 0 and hosted.serving["months_served"] == 0
    assert hosted.horizon_usd == pytest.approx(hosted.one_time_usd)
    assert hosted.stop_mark == " (m0)"
    assert r.cheapest is None
    assert r.verdict().startswith("No option serves all 12 months at this traffic")
    assert f"{MINI} fine-tuned (already stopped serving)" in r.verdict()
    assert any(
        "stopped accepting new fine-tuning jobs after 2027-01-06" in w for w in hosted.warnings
    )
