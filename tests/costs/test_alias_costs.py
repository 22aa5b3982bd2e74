"""Per-alias cost this month: tokens from the gateway log, deployment hours from billing.py,
cost per 1,000 requests, and the break-even on actual traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.costs.alias_costs import alias_costs, month_start
from app.database import get_engine
from db.engine import write_session
from db.models import Alias, Job, Promotion
from tests.costs.gateway_rows import add_deployment, add_eval_run, log_requests

# Noon on the 16th of a 30-day month: the month so far is exactly 15.5 days.
NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 1, tzinfo=UTC)
HALF_MONTH_H = 15 * 24  # a deployment running from the 1st 12:00 to now
USD_PER_HOUR = 4.0
MODEL = "acme/Llama-3.1-8B-tickets"


def spread(n: int, first: datetime, last: datetime) -> list[datetime]:
    step = (last - first) / max(1, n - 1)
    return [first + i * step for i in range(n)]


def promote_holder(task: str = "tickets", alias: str = "production") -> None:
    """A fine-tune that cost $30 to train holds the alias; its task's few-shot baseline
    was measured at $0.02 a request."""
    with write_session(get_engine()) as s:
        job = Job(
            name="tickets-ft",
            provider="together",
            base_model="meta-llama/Llama-3.1-8B",
            method="lora",
            status="succeeded",
            actual_cost_usd=30.0,
        )
        s.add(job)
        s.flush()
        job_id = job.id
    run_id = add_eval_run(task, None, candidate_kind="fine_tuned", model=MODEL, job_id=job_id)
    add_eval_run(task, None, summary={"task": {"cost_per_request_usd": 0.02}})
    with write_session(get_engine()) as s:
        promo = Promotion(
            task=task,
            alias=alias,
            action="promote",
            provider="together",
            model=MODEL,
            model_kind="hosted",
            job_id=job_id,
            eval_run_id=run_id,
            who="test",
        )
        s.add(promo)
        s.flush()
        s.add(Alias(task=task, alias=alias, promotion_id=promo.id))


def serve_month(requests: int, *, deployment: int, last_month: bool = False) -> None:
    """``requests`` served this month through ``deployment`` at $0.001 of tokens each
    (and, with ``last_month``, as many before the month began: not this month's money)."""
    log_requests(
        spread(requests, START + timedelta(hours=13), NOW - timedelta(hours=1)),
        model=MODEL,
        provider="together",
        deployment_id=deployment,
    )
    if last_month:
        log_requests(
            spread(requests, START - timedelta(days=20), START - timedelta(seconds=1)),
            model=MODEL,
            provider="together",
            deployment_id=deployment,
            cost_usd=1.0,
        )


def deploy_half_month(usd_per_hour: float = USD_PER_HOUR) -> int:
    """A dedicated endpoint for tickets:production, up from the 1st at 12:00 to now."""
    return add_deployment(
        model=MODEL,
        task="tickets",
        alias="production",
        usd_per_hour=usd_per_hour,
        started_at=START + timedelta(hours=12),
    )


@pytest.fixture
def half_month_deployment() -> int:
    return deploy_half_month()


def test_tokens_plus_half_a_month_of_hours_per_1000_requests(half_month_deployment):
    serve_month(600, deployment=half_month_deployment, last_month=True)
    log_requests([NOW - timedelta(hours=2)] * 50, route="shadow", model="ft:shadow", cost_usd=0.01)
    log_requests([NOW - timedelta(hours=2)] * 7, status_code=502, cost_usd=None)
    log_requests([NOW - timedelta(hours=3)] * 40, alias="staging", model="ft:other")
    # A deployment stopped before the month began costs nothing this month.
    add_deployment(
        usd_per_hour=100.0,
        task="tickets",
        alias="production",
        state="stopped",
        started_at=START - timedelta(days=10),
        stopped_at=START - timedelta(days=2),
    )
    # One up since last month: only this month's 15.5 days are this month's money.
    add_deployment(
        usd_per_hour=1.0, task="tickets", alias="staging", started_at=START - timedelta(days=10)
    )
    found = {a.name: a for a in alias_costs(get_engine(), now=NOW).aliases}
    prod = found["tickets:production"]
    assert prod.requests == 600  # shadow and failed rows are not requests served
    assert prod.token_usd == pytest.approx(600 * 0.001 + 50 * 0.01)
    assert prod.shadow_usd == pytest.approx(0.5)
    assert prod.deployment_usd == pytest.approx(HALF_MONTH_H * USD_PER_HOUR)
    total = 600 * 0.001 + 0.5 + HALF_MONTH_H * USD_PER_HOUR
    assert prod.total_usd == pytest.approx(total)
    assert prod.per_1k_usd == pytest.approx(total / 600 * 1000)
    staging = found["tickets:staging"]
    assert staging.requests == 40
    assert staging.deployment_usd == pytest.approx(15.5 * 24 * 1.0)
    assert staging.per_1k_usd == pytest.approx((40 * 0.001 + 15.5 * 24) / 40 * 1000)


def test_a_deployment_serving_two_aliases_is_split_by_their_requests(half_month_deployment):
    serve_month(300, deployment=half_month_deployment)
    log_requests(
        [NOW - timedelta(hours=1)] * 100, alias="staging", deployment_id=half_month_deployment
    )
    found = {a.name: a for a in alias_costs(get_engine(), now=NOW).aliases}
    hours_usd = HALF_MONTH_H * USD_PER_HOUR
    assert found["tickets:production"].deployment_usd == pytest.approx(hours_usd * 0.75)
    assert found["tickets:staging"].deployment_usd == pytest.approx(hours_usd * 0.25)


def test_break_even_is_recomputed_on_the_actual_traffic():
    promote_holder()
    deployment = deploy_half_month(usd_per_hour=0.01)  # $3.60 over the 15 days
    serve_month(1000, deployment=deployment)
    low = alias_costs(get_engine(), now=NOW).aliases[0]
    per_request = (1000 * 0.001 + HALF_MONTH_H * 0.01) / 1000
    assert low.break_even.per_request_usd == pytest.approx(per_request)
    assert low.break_even.requests == pytest.approx(30 / (0.02 - per_request))
    assert low.break_even.months == pytest.approx(low.break_even.requests / low.requests_per_month)
    # Twice the traffic spreads the same hours thinner: it pays back sooner.
    serve_month(1000, deployment=deployment)
    high = alias_costs(get_engine(), now=NOW).aliases[0]
    assert high.break_even.per_request_usd < low.break_even.per_request_usd
    assert high.break_even.requests < low.break_even.requests


def test_too_little_traffic_never_pays_back_for_the_hours():
    promote_holder()
    serve_month(100, deployment=deploy_half_month(usd_per_hour=0.01))  # $0.037 a request
    found = alias_costs(get_engine(), now=NOW).aliases[0]
    assert found.break_even.requests is None and found.break_even.note.startswith("never")


def test_cli_table_fits_80_columns_and_json_carries_the_figures():
    promote_holder()
    end = datetime.now(UTC)
    deployment = add_deployment(
        model=MODEL, usd_per_hour=2.0, started_at=min(end - timedelta(minutes=10), month_start(end))
    )
    log_requests([end - timedelta(minutes=5)] * 10, model=MODEL, deployment_id=deployment)
    out = CliRunner().invoke(cli, ["costs", "aliases", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["month"] == end.strftime("%Y-%m")
    prod = data["aliases"][0]
    assert prod["name"] == "tickets:production" and prod["requests"] == 10
    assert prod["total_usd"] == pytest.approx(prod["token_usd"] + prod["deployment_usd"])
    assert prod["per_1k_usd"] == pytest.approx(prod["total_usd"] / 10 * 1000)
    assert set(prod["break_even"]) >= {"requests", "months", "per_request_usd", "note"}

    out = CliRunner().invoke(cli, ["costs", "aliases"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("tickets:production") and "10" in line for line in lines)
    assert "held by together acme/Llama-3.1-8B-tickets" in out.output
