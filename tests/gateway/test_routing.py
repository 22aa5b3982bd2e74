"""TASK:ALIAS resolution per request: promotions and rollbacks through the real promotion
API are seen by the next plan; unknown names say what exists; running deployments."""

from __future__ import annotations

import sys

import pytest

from app.database import get_engine
from app.gateway import routing
from app.promotion import aliases
from db.engine import write_session
from db.models import Deployment
from tests.gateway.traffic_helpers import TASK, eval_runs, promote


@pytest.fixture
def runs() -> dict[str, int]:
    runs = eval_runs("good", "better")
    promote(runs["good"])
    return runs


def test_the_next_plan_follows_a_promotion_and_a_rollback(runs):
    engine = get_engine()
    first = routing.plan(engine, TASK)
    assert (first.task, first.alias, first.route) == (TASK, "production", "primary")
    assert (first.answer.provider, first.answer.model, first.answer.alias) == (
        "echo",
        "good",
        "production",
    )
    assert routing.plan(engine, f"{TASK}:production").answer == first.answer

    promote(runs["better"])
    moved = routing.plan(engine, TASK).answer
    assert moved.model == "better" and moved.promotion_id != first.answer.promotion_id

    aliases.rollback(engine, task=TASK, alias="production", who="ci")
    assert routing.plan(engine, TASK).answer.model == "good"


def test_unknown_task_or_alias_names_what_exists(runs):
    engine = get_engine()
    with pytest.raises(routing.UnknownModel) as unknown_task:
        routing.plan(engine, "sentiment")
    assert "'sentiment'" in unknown_task.value.message and TASK in unknown_task.value.message

    with pytest.raises(routing.UnknownModel) as unknown_alias:
        routing.plan(engine, f"{TASK}:staging")
    message = unknown_alias.value.message
    assert "'staging'" in message and f"{TASK}:production" in message
    assert f"ftm promote --task {TASK} --alias staging" in message

    assert routing.served_models(engine) == [TASK, f"{TASK}:production"]
    promote(runs["better"], alias="staging")
    assert routing.served_models(engine) == [TASK, f"{TASK}:production", f"{TASK}:staging"]


def test_the_newest_running_deployment_of_the_holder_answers(runs):
    engine = get_engine()
    assert routing.plan(engine, TASK).answer.deployment is None
    with write_session(engine) as s:
        rows = [
            Deployment(
                provider="echo",
                model="good",
                kind="dedicated",
                state="running",
                remote_id="ep-old",
                hardware="h1",
                usd_per_hour=1.0,
            ),
            Deployment(
                provider="echo",
                model="good",
                kind="dedicated",
                state="running",
                remote_id="ep-new",
                endpoint_url="http://127.0.0.1:9/v1",
                hardware="h2",
                usd_per_hour=2.5,
            ),
            Deployment(
                provider="echo",
                model="good",
                kind="dedicated",
                state="stopped",
                remote_id="ep-stopped",
            ),
            Deployment(
                provider="other",
                model="good",
                kind="dedicated",
                state="running",
                remote_id="ep-other",
            ),
        ]
        s.add_all(rows)
        s.flush()
        newest = rows[1].id
    answer = routing.plan(engine, TASK).answer
    assert answer.deployment_id == newest
    d = answer.deployment
    assert (d.name, d.model, d.state, d.remote_id, d.endpoint_url, d.hardware, d.usd_per_hour) == (
        "ep-new",
        "good",
        "running",
        "ep-new",
        "http://127.0.0.1:9/v1",
        "h2",
        2.5,
    )
    assert answer.needs_deployment is False  # echo is no installed provider: the default


PLUGIN = """
from tests.evaluation.helpers import EchoLabelProvider


class EchoProvider(EchoLabelProvider):
    @classmethod
    def from_config(cls, config, context):
        return cls()

    def deployment_kind(self, model):
        return "dedicated" if model == "better" else "serverless"
"""


@pytest.fixture
def echo_installed(tmp_path, monkeypatch):
    """Provider "echo" installed as a distribution with an ``ftm.providers`` entry point."""
    site = tmp_path / "site"
    (site / "ftm_echo_routing").mkdir(parents=True)
    (site / "ftm_echo_routing" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_echo_routing-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ftm-echo-routing\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[ftm.providers]\necho = ftm_echo_routing:EchoProvider\n"
    )
    monkeypatch.syspath_prepend(str(site))
    routing.forget_providers()
    yield
    routing.forget_providers()
    sys.modules.pop("ftm_echo_routing", None)


def test_needs_deployment_is_what_the_provider_contract_says(runs, echo_installed):
    engine = get_engine()
    assert routing.plan(engine, TASK).answer.needs_deployment is False  # "good": serverless
    promote(runs["better"])
    assert routing.plan(engine, TASK).answer.needs_deployment is True  # "better": dedicated
