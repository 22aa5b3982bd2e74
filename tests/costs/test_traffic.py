"""Measured traffic from the gateway log drives the estimate; the user's figure otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.costs.traffic import measured_traffic, traffic_for
from app.database import get_engine
from app.lifecycle import DAYS_PER_MONTH
from tests.costs.conftest import chat_examples
from tests.costs.gateway_rows import add_eval_run, log_requests

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def spread(n: int, days: float, end: datetime = NOW) -> list[datetime]:
    """``n`` times evenly over the ``days`` before ``end``, the first exactly ``days`` back."""
    step = timedelta(days=days) / n
    return [end - timedelta(days=days) + i * step for i in range(n)]


def ten_days_of_traffic(end: datetime = NOW) -> None:
    """100 served requests over 10 days (80 primary, 20 canary), prompts 100/300 tokens and
    replies 10/30, amid rows that are not the task's served traffic."""
    times = spread(100, 10, end)
    log_requests(times[:80], prompt_tokens=[100, 300], completion_tokens=[10, 30])
    log_requests(
        times[80:],
        route="canary",
        model="ft:canary",
        prompt_tokens=[100, 300],
        completion_tokens=[10, 30],
    )
    noise = spread(30, 9, end)
    log_requests(noise, task="other", prompt_tokens=5000)
    log_requests(noise, route="shadow", prompt_tokens=5000)
    log_requests(noise, status_code=502, prompt_tokens=5000, completion_tokens=None)
    log_requests(spread(30, 5, end - timedelta(days=40)), prompt_tokens=5000)  # too old


def test_ten_days_scale_to_a_month_and_only_served_requests_count():
    ten_days_of_traffic()
    found = measured_traffic(get_engine(), task="tickets", now=NOW)
    assert found is not None and found.source == "measured"
    assert found.requests == 100
    assert found.window_days == pytest.approx(10)
    assert found.requests_per_month == pytest.approx(100 / 10 * DAYS_PER_MONTH)
    assert found.prompt_tokens == pytest.approx(200)
    assert found.completion_tokens == pytest.approx(20)
    text = found.describe()
    assert "measured from the gateway log over the last 10 days" in text
    assert "304 requests/month" in text and "~200 prompt / 20 reply tokens" in text
    # Narrowed to the canary's model: only its rows.
    canary = measured_traffic(get_engine(), task="tickets", model="ft:canary", now=NOW)
    assert canary.requests == 20


def test_an_hour_of_traffic_is_scaled_as_a_day_not_multiplied_by_730():
    log_requests(spread(24, 1 / 24))
    log_requests(spread(6, 1 / 24), alias="staging")
    found = measured_traffic(get_engine(), task="tickets", alias="production", now=NOW)
    assert found.requests == 24 and found.window_days == 1
    assert found.requests_per_month == pytest.approx(24 * DAYS_PER_MONTH)
    # The task's traffic is all its aliases'.
    assert measured_traffic(get_engine(), task="tickets", now=NOW).requests == 30


def test_the_users_figure_without_traffic_and_when_given():
    engine = get_engine()
    none = traffic_for(engine, given=None, task="tickets", now=NOW)
    assert none.source == "assumed" and none.requests_per_month == 10_000
    assert none.window_days is None and "no gateway traffic for task tickets" in none.describe()
    given = traffic_for(engine, given=2_500, task="tickets", now=NOW)
    assert (given.source, given.requests_per_month) == ("assumed", 2_500)
    ten_days_of_traffic()
    assert traffic_for(engine, given=None, task="tickets", now=NOW).source == "measured"
    # A figure the user gives is a what-if: it wins over the measurement.
    what_if = traffic_for(engine, given=2_500, task="tickets", now=NOW)
    assert what_if.source == "assumed" and what_if.requests_per_month == 2_500
    assert "the figure given" in what_if.describe()
    # No task known for the data: nothing to measure.
    assert traffic_for(engine, given=None, task=[], now=NOW).source == "assumed"


def estimate(*args: str) -> str:
    out = CliRunner().invoke(cli, ["estimate", "tickets", "--provider", "openai", *args])
    assert out.exit_code == 0, out.output
    return out.output


def test_estimate_prices_the_measured_traffic_of_the_datasets_task(make_dataset):
    ds = make_dataset("tickets", chat_examples(40))
    default = json.loads(estimate("--json"))
    assert default["traffic"]["source"] == "assumed"
    assert default["traffic"]["requests_per_month"] == 10_000
    assert default["traffic"]["window_days"] is None

    add_eval_run("tickets", ds.id)
    ten_days_of_traffic(end=datetime.now(UTC))
    data = json.loads(estimate("--json"))
    traffic = data["traffic"]
    assert traffic["source"] == "measured"
    assert traffic["window_days"] == pytest.approx(10, rel=1e-3)
    assert traffic["requests_per_month"] == pytest.approx(100 / 10 * DAYS_PER_MONTH, rel=1e-3)
    assert data["requests_per_month"] == traffic["requests_per_month"]
    # The request's shape comes from the log too: the baseline and the fine-tune are
    # priced on 200-token prompts and 20-token replies.
    assert data["profile"]["prompt_tokens"] == pytest.approx(200)
    assert data["profile"]["output_tokens"] == pytest.approx(20)
    baseline = data["options"][0]
    assert baseline["monthly_usd"] == pytest.approx(
        baseline["per_request_usd"] * traffic["requests_per_month"]
    )
    text = estimate()
    assert "Traffic measured from the gateway log over the last 10 days" in text
    assert "304 requests/month" in text and "prompt and reply from the gateway log" in text

    what_if = json.loads(estimate("--requests-per-month", "50000", "--json"))
    assert what_if["traffic"]["source"] == "assumed" and what_if["requests_per_month"] == 50_000
    assert what_if["profile"]["prompt_tokens"] != pytest.approx(200)
    assert "Traffic assumed: 50,000 requests/month, the figure given" in estimate(
        "--requests-per-month", "50000"
    )
    # Another task's traffic is not this dataset's.
    other = json.loads(estimate("--task", "other", "--json"))
    assert other["traffic"]["requests"] == 30
