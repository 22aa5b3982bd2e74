"""The migration plan (`app.promotion.plan`, `ftm models plan`): with the clock set near
OpenAI's job-creation cutoff (FTM_TODAY), the alias held by an OpenAI fine-tune is listed
with both of its ends, and the cheapest replacement that passes the gates is chosen from
the recorded evaluations — a cheaper one that fails a gate, and one on a provider that is
itself winding down, are ruled out with the reason. Real eval runner, real database,
real lifecycle declarations and catalog prices; the completions come from a
deterministic test provider (the end-to-end migrations use the real ones)."""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.costs.catalog import load_catalog
from app.database import get_engine
from app.evaluation.compare import leaderboard
from app.evaluation.pricing import self_hosted_per_hour
from app.promotion import aliases
from app.promotion.gates import set_policy
from app.promotion.plan import STOPS_RETRAINING, STOPS_SERVING, migration_plan
from tests.promotion.plan_fixtures import HOLDER, HOSTED_OTHER, SMALL, record_plan_candidates

HOURS_PER_MONTH = load_catalog(use_settings=False).default("hours_per_month")
NEAR_CUTOFF = "2026-12-20"  # 17 days before OpenAI's last day for new jobs (2027-01-06)


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setenv("FTM_TODAY", NEAR_CUTOFF)
    return record_plan_candidates()


def test_plan_lists_the_hosted_alias_with_its_deadlines_and_cheapest_passing_replacement(
    recorded,
):
    engine = get_engine()
    costs = {r.run_id: r.cost_per_1k_usd for r in leaderboard(engine, "routing")}
    # the premises that make "cheapest that passes the gates" a real choice
    assert costs[recorded["forgetful"].id] < costs[recorded["small"].id]
    assert costs[recorded["small"].id] < costs[recorded["big"].id]

    plan = migration_plan(engine)
    assert plan.today == date(2026, 12, 20)
    # staging is held by a local adapter: nothing ends, so it is not listed
    assert [(e.task, e.alias) for e in plan.entries] == [("routing", "production")]
    entry = plan.entries[0]
    assert entry.model == HOLDER and entry.provider == "openai"
    assert [(d.day, d.what) for d in entry.deadlines] == [
        (date(2027, 1, 6), STOPS_RETRAINING),
        (date(2027, 1, 14), STOPS_SERVING),
    ]
    chosen = entry.replacement
    assert chosen is not None and chosen.run_id == recorded["small"].id
    # A self-hosted replacement keeps its serving GPU up all month, used or not.
    gpu_hourly = self_hosted_per_hour(SMALL)
    assert chosen.hosting_per_hour == gpu_hourly and gpu_hourly and gpu_hourly > 0
    assert chosen.projected_usd == pytest.approx(
        costs[chosen.run_id] / 1000 * 10_000 * 12 + gpu_hourly * HOURS_PER_MONTH * 12
    )
    rejected = "\n".join(entry.rejected)
    assert "adapters/forgetful-05b [local]: fails the general gate" in rejected
    assert f"{HOSTED_OTHER} [openai]: {STOPS_RETRAINING} 2027-01-06" in rejected
    assert "good-8b" not in rejected  # passes, but costs more


def test_plan_horizon_and_clock(recorded, monkeypatch):
    engine = get_engine()
    # well before the cutoff, a 3-month horizon ends before it: nothing to plan
    early = migration_plan(engine, horizon_months=3, today=date(2026, 6, 1))
    assert early.entries == () and early.horizon_end == date(2026, 8, 31)
    # a 7.25-month horizon (to 2027-01-08) from the same day reaches the cutoff but not the retirement
    reaching = migration_plan(engine, horizon_months=7.25, today=date(2026, 6, 1))
    assert [d.what for d in reaching.entries[0].deadlines] == [STOPS_RETRAINING]
    # after the retirement the holder is still listed (its deadlines already passed)
    late = migration_plan(engine, today=date(2027, 2, 1))
    assert [d.day for d in late.entries[0].deadlines] == [date(2027, 1, 6), date(2027, 1, 14)]


def test_a_former_holder_is_a_candidate_ruled_out_by_its_own_cutoff(recorded):
    engine = get_engine()
    aliases.promote(
        engine, task="routing", alias="production", run_id=recorded["hosted_other"].id, who="ci"
    )
    entry = migration_plan(engine).entries[0]
    assert entry.model == HOSTED_OTHER
    assert f"{HOLDER} [openai]: {STOPS_RETRAINING} 2027-01-06" in entry.rejected
    assert entry.replacement.run_id == recorded["small"].id


def test_plan_without_a_passing_replacement_says_what_to_do(recorded):
    engine = get_engine()
    set_policy(engine, "routing", min_margin_over_baseline=2.0)  # nothing can pass
    entry = migration_plan(engine).entries[0]
    assert entry.replacement is None
    assert "ftm migrate --task routing --to PROVIDER" in entry.why_none
    assert sum("fails the baseline" in r for r in entry.rejected) == 3


def _ftm(*args):
    return CliRunner().invoke(
        cli, list(args), catch_exceptions=False, env={"COLUMNS": "80", "FTM_TODAY": NEAR_CUTOFF}
    )


def test_models_plan_cli_text_fits_80_columns_and_json_matches(recorded):
    text = _ftm("models", "plan")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    out = text.output
    assert "routing/production" in out and "routing/staging" not in out
    assert f"2027-01-06 (17 days): {STOPS_RETRAINING}" in out
    assert f"2027-01-14 (25 days): {STOPS_SERVING}" in out
    assert "adapters/good-1b [local]" in out
    assert f"ftm promote --task routing --alias production --run {recorded['small'].id}" in out

    as_json = _ftm("models", "plan", "--json", "--requests-per-month", "1000")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["today"] == NEAR_CUTOFF and data["requests_per_month"] == 1000
    (entry,) = data["entries"]
    assert entry["alias"] == "production" and entry["deadline"] == "2027-01-06"
    assert entry["days_left"] == 17
    assert entry["replacement"]["run_id"] == recorded["small"].id
    per_1k = entry["replacement"]["cost_per_1k_usd"]
    gpu_month = entry["replacement"]["hosting_per_hour"] * HOURS_PER_MONTH
    assert entry["replacement"]["projected_usd"] == pytest.approx((per_1k + gpu_month) * 12)

    refused = _ftm("models", "plan", "--horizon", "0")
    assert refused.exit_code != 0 and "--horizon" in refused.output


def test_a_deployment_s_hourly_fee_is_part_of_a_replacement_s_projected_cost(monkeypatch):
    """A fine-tune that answers only from a deployment billed by the hour, used or not
    (Azure OpenAI's; Together's dedicated endpoint alike) costs those hours over the
    horizon on top of its per-token price, and the plan says so."""
    from app.evaluation.candidates import Candidate, split_example
    from app.evaluation.runner import run_eval
    from app.promotion.plan import plan_lines
    from providers.azure import AzureOpenAIProvider
    from tests.evaluation.helpers import routing_config, routing_examples
    from tests.promotion.plan_fixtures import BEHAVIOUR, HOSTED_BASE, ByName

    monkeypatch.setenv("FTM_TODAY", NEAR_CUTOFF)
    engine = get_engine()
    azure_base = "gpt-4.1-nano-2025-04-14"  # Azure trains it until 2027-04-14
    azure_model = f"ft:{azure_base}:org:routing:az"
    monkeypatch.setitem(BEHAVIOUR, azure_model, "good")
    monkeypatch.setitem(BEHAVIOUR, azure_base, "base")
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]

    def run(kind, provider_name, model, **kw):
        return run_eval(
            Candidate(kind, provider_name, model, **kw),
            examples,
            routing_config(),
            provider=ByName(),
            engine=engine,
            train_examples=routing_examples(12),
        )

    run("few_shot", "openai", HOSTED_BASE, k=3)
    run("zero_shot", "openai", HOSTED_BASE)
    holder = run("fine_tuned", "openai", HOLDER, base_model=HOSTED_BASE)
    aliases.promote(engine, task="routing", alias="production", run_id=holder.id, who="ci")
    run("zero_shot", "azure", azure_base)  # for the forgetting check
    azure = run("fine_tuned", "azure", azure_model, base_model=azure_base)
    per_1k = {r.run_id: r.cost_per_1k_usd for r in leaderboard(engine, "routing")}[azure.id]
    hourly = AzureOpenAIProvider.pricing().models[azure_base].hosting_per_hour
    months = 3  # ends before Azure stops training the base

    plan = migration_plan(engine, horizon_months=months)
    chosen = plan.entries[0].replacement
    assert chosen is not None, plan.entries[0].rejected
    assert chosen.run_id == azure.id and chosen.hosting_per_hour == hourly > 0
    assert chosen.projected_usd == pytest.approx(
        per_1k / 1000 * 10_000 * months + hourly * 730 * months  # the catalog's hours/month
    )
    text = " ".join(" ".join(plan_lines(plan)).split())
    assert f"+ hosting ${hourly:.2f}/h, about" in text
