"""Canary: a staged candidate answers a configured share of production's traffic; the
policy lives in the database, so a change is seen by the next plan."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.database import get_engine
from app.gateway import policy, routing
from db.engine import write_session
from db.models import GatewayRequest
from tests.gateway.traffic_helpers import TASK, eval_runs, promote


def _ftm(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def staged() -> dict[str, int]:
    runs = eval_runs("good", "candidate")
    promote(runs["good"])
    promote(runs["candidate"], alias="staging")
    return runs


def _canary_count(n: int) -> int:
    engine = get_engine()
    return sum(routing.plan(engine, TASK).route == "canary" for _ in range(n))


def test_the_canary_share_is_within_binomial_bounds_and_0_and_100_are_exact(staged):
    engine = get_engine()
    policy.set_canary(engine, TASK, 10)
    n, p = 4000, 0.10
    sigma = math.sqrt(n * p * (1 - p))
    got = _canary_count(n)
    assert n * p - 4 * sigma <= got <= n * p + 4 * sigma, got

    plan = routing.plan(engine, TASK, draw=0.0999)
    assert (plan.route, plan.answer.alias, plan.answer.model) == ("canary", "staging", "candidate")
    assert plan.alias == "production"  # what the client asked for
    assert routing.plan(engine, TASK, draw=0.10).route == "primary"

    policy.set_canary(engine, TASK, 0)
    assert _canary_count(300) == 0
    policy.set_canary(engine, TASK, 100)
    assert _canary_count(300) == 300


def test_policy_errors_say_what_to_do():
    engine = get_engine()
    with pytest.raises(policy.PolicyError, match="no promoted model"):
        policy.set_canary(engine, TASK, 10)
    with pytest.raises(policy.PolicyError, match="no promoted model"):
        policy.set_shadow(engine, TASK, False)
    promote(eval_runs("good")["good"])
    with pytest.raises(policy.PolicyError, match=f"ftm promote --task {TASK} --alias staging"):
        policy.set_canary(engine, TASK, 10)
    with pytest.raises(policy.PolicyError, match="between 0 and 100"):
        policy.set_canary(engine, TASK, 101)
    assert routing.plan(engine, TASK, draw=0.0).route == "primary"


def test_cli_canary_on_off_and_its_count_in_models_list(staged):
    result = _ftm("models", "canary", TASK, "--percent", "150")
    assert result.exit_code != 0 and "between 0 and 100" in result.output
    assert "Traceback" not in result.output
    result = _ftm("models", "canary", TASK)
    assert result.exit_code != 0 and "--percent" in result.output

    result = _ftm("models", "canary", TASK, "--percent", "25")
    assert result.exit_code == 0, result.output
    assert "canary 25% from staging (0 served)" in result.output
    assert routing.plan(get_engine(), TASK, draw=0.2).route == "canary"

    with write_session(get_engine()) as s:  # what the gateway logs for canary answers
        s.add_all(
            GatewayRequest(
                request_id=f"c{i}", task=TASK, alias="production", route="canary", status_code=200
            )
            for i in range(3)
        )
        s.add(GatewayRequest(request_id="p1", task=TASK, alias="production", status_code=200))
    listed = _ftm("models", "list", "--task", TASK)
    assert "routing/production traffic: canary 25% from staging (3 served)" in listed.output
    shown = _ftm("models", "show", "--task", TASK)
    assert "traffic: canary 25% from staging (3 served)" in shown.output

    result = _ftm("models", "canary", TASK, "--off")
    assert result.exit_code == 0 and "no canary" in result.output
    assert routing.plan(get_engine(), TASK, draw=0.0).route == "primary"
    assert json.loads(json.dumps(policy.view(get_engine(), TASK).to_dict()))["canary"] == {
        "alias": "staging",
        "percent": 0.0,
        "requests_served": 3,
    }
