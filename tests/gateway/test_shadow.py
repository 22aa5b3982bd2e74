"""Shadow: the candidate gets a copy of each request when it is a different model; its
answers (stored by the request log) feed its figures in `ftm compare`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.cli.main import cli
from app.database import get_engine
from app.gateway import policy, routing
from app.gateway.request_log import RequestLog
from tests.gateway.traffic_helpers import TASK, eval_runs, promote


def _ftm(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_shadow_only_when_the_candidate_differs_from_the_answer():
    engine = get_engine()
    runs = eval_runs("good", "candidate")
    promote(runs["good"])
    promote(runs["good"], alias="staging")  # staging holds the same model
    assert _ftm("models", "shadow", TASK).exit_code == 0
    assert routing.plan(engine, TASK).shadow is None

    promote(runs["candidate"], alias="staging")
    shadow = routing.plan(engine, TASK).shadow
    assert (shadow.alias, shadow.model) == ("staging", "candidate")
    # a canary answer from staging is not shadowed by staging itself
    policy.set_canary(engine, TASK, 100)
    assert routing.plan(engine, TASK).shadow is None
    policy.set_canary(engine, TASK, 0)

    result = _ftm("models", "shadow", TASK, "--off")
    assert result.exit_code == 0 and "no canary, no shadow" in result.output
    assert routing.plan(engine, TASK).shadow is None


def test_shadow_pairs_show_beside_the_candidates_eval_in_compare():
    engine = get_engine()
    runs = eval_runs("good", "candidate")
    promote(runs["good"])
    promote(runs["candidate"], alias="staging")
    policy.set_shadow(engine, TASK, True)
    log = RequestLog(engine, flush_interval_s=3600)
    answers = [
        ("billing", " billing\n", 200, 10.0),
        ("tech", "billing", 200, 30.0),
        ("tech", None, 502, None),
    ]
    for i, (primary, candidate, status, latency) in enumerate(answers):
        log.record_shadow(
            request_id=f"s{i}",
            task=TASK,
            alias="production",
            messages=[{"role": "user", "content": f"q{i}"}],
            primary_provider="echo",
            primary_model="good",
            primary_text=primary,
            candidate_provider="echo",
            candidate_model="candidate",
            candidate_text=candidate,
            candidate_latency_ms=latency,
            candidate_status=status,
        )
    log.close()

    rows = json.loads(_ftm("compare", "--task", TASK, "--json").output)
    by_model = {r["model"]: r for r in rows}
    assert "shadow" not in by_model["good"]
    assert by_model["candidate"]["shadow"] == {
        "provider": "echo",
        "model": "candidate",
        "pairs": 3,
        "identical_share": 0.5,
        "mean_latency_ms": 20.0,
        "errors": 1,
    }
    text = _ftm("compare", "--task", TASK).output
    assert "candidate [echo]: 3 shadow pairs: 50.0% identical to production" in text
    assert "mean latency 20 ms, 1 errors" in text
    shown = _ftm("models", "show", "--task", TASK)
    assert "shadow to staging (3 pairs)" in shown.output


async def test_the_models_view_shows_the_policy_with_its_counts_and_the_shadow_figures():
    from textual.widgets import DataTable

    from app.tui.app import create_app
    from app.tui.views.models import ModelsView
    from tests.tui.helpers import settle

    engine = get_engine()
    runs = eval_runs("good", "candidate")
    promote(runs["good"])
    promote(runs["candidate"], alias="staging")
    policy.set_canary(engine, TASK, 5)
    policy.set_shadow(engine, TASK, True)
    log = RequestLog(engine, flush_interval_s=3600)
    log.record(
        {
            "request_id": "c1",
            "task": TASK,
            "alias": "production",
            "route": "canary",
            "status_code": 200,
        }
    )
    log.record_shadow(
        request_id="s1",
        task=TASK,
        alias="production",
        messages=[],
        primary_provider="echo",
        primary_model="good",
        primary_text="billing",
        candidate_provider="echo",
        candidate_model="candidate",
        candidate_text="billing",
        candidate_latency_ms=12.0,
        candidate_status=200,
    )
    log.close()
    app = create_app(start_poller=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("m")
        await settle(pilot)
        view = pilot.app.query_one(ModelsView)
        holders = str(view.query_one("#models-holders").render())
        assert (
            "routing/production traffic: canary 5% from staging (1 served); "
            "shadow to staging (1 pairs)" in holders
        )
        table = view.query_one(DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(str(runs["candidate"])))
        await pilot.pause()
        details = str(view.query_one("#models-details").render())
        assert "shadow: 1 shadow pairs: 100.0% identical to production" in details
