"""End to end on the sandbox emulator (real SDK over real HTTP): a fine-tune that beats
the few-shot baseline is promoted; one trained on a corrupted dataset is refused by the
gate; a rerun is served from the cache; rollback and export work from the CLI."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.evaluation.service import EvalRequest, evaluate
from app.jobs.providers import make_provider
from app.sandbox.server import SandboxServer
from tests.evaluation.sandbox_fixtures import BASE, add_ticket_datasets, train


@pytest.fixture
def sandbox(monkeypatch):
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


class CountingProvider:
    """The real provider, with its completions counted (to prove cache hits)."""

    def __init__(self, inner):
        self._inner = inner
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def complete(self, *args, **kwargs):
        with self._lock:
            self.calls += 1
        return self._inner.complete(*args, **kwargs)


def _cli(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    return result


@pytest.mark.slow
def test_good_fine_tune_is_promoted_corrupted_one_refused(sandbox, tmp_path):
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    good_job = train(engine, "tickets", "good")
    bad_job = train(engine, "tickets-rotated", "rotated")
    assert good_job.fine_tuned_model.startswith(f"ft:{BASE}:")

    # Evaluate through the CLI: zero-shot, 3-shot baseline, both fine-tunes.
    result = _cli(
        "eval",
        "--task",
        "routing",
        "--dataset",
        "tickets",
        "--provider",
        "openai",
        "--base",
        BASE,
        "--few-shot",
        "3",
        "--job",
        str(good_job.id),
        "--job",
        str(bad_job.id),
        "--json",
    )
    assert result.exit_code == 0, result.output
    runs = {r["model"] + ":" + r["kind"]: r for r in json.loads(result.output)}
    good_run = runs[good_job.fine_tuned_model + ":fine_tuned"]
    bad_run = runs[bad_job.fine_tuned_model + ":fine_tuned"]
    few = runs[BASE + ":few_shot"]
    zero = runs[BASE + ":zero_shot"]
    assert good_run["summary"]["task"]["primary"] == "label"
    q = {
        k: r["summary"]["task"]["quality"]
        for k, r in (("good", good_run), ("bad", bad_run), ("few", few), ("zero", zero))
    }
    assert q["good"] > q["few"] > q["bad"], q
    assert q["zero"] == 0.0  # the sandbox's generic zero-shot reply is never a label
    # measured tokens and costs: few-shot prompts carry the shots
    few_t, good_t = few["summary"]["task"], good_run["summary"]["task"]
    assert few_t["mean_prompt_tokens"] > good_t["mean_prompt_tokens"]
    assert few_t["cost_per_1k_usd"] > 0 and good_t["cost_per_1k_usd"] > 0
    assert good_run["summary"]["task"]["confusion"]

    _cli("gates", "--task", "routing", "--margin", "0.1")
    refused = _cli("promote", "--task", "routing", "--run", str(bad_run["run_id"]))
    assert refused.exit_code == 1
    assert "gate(s) failed" in refused.output and "baseline: quality" in refused.output
    assert "does not beat the few-shot baseline" in refused.output

    ok = _cli(
        "promote", "--task", "routing", "--run", str(good_run["run_id"]), "--why", "beats 3-shot"
    )
    assert ok.exit_code == 0, ok.output
    assert "pass baseline" in ok.output and "pass general" in ok.output
    assert f"routing/production -> {good_job.fine_tuned_model}" in ok.output
    assert "retires on 2027-01-14" in ok.output  # the base's sunset is flagged

    exported = _cli("models", "export", "--alias", "production", "--format", "json")
    record = json.loads(exported.output)
    assert record["model"] == good_job.fine_tuned_model and record["provider"] == "openai"
    assert record["base_url"] == sandbox.base_url
    env = _cli(
        "models", "export", "--alias", "production", "--task", "routing", "--format", "env"
    ).output
    assert f"FTM_MODEL={good_job.fine_tuned_model}" in env and "sk-" not in env

    # an override promotes the refused one, recorded as such; rollback restores the good one
    forced = _cli(
        "promote",
        "--task",
        "routing",
        "--run",
        str(bad_run["run_id"]),
        "--override",
        "--why",
        "testing the rollback",
    )
    assert forced.exit_code == 0 and "gates overridden" in forced.output
    back = _cli("promote", "--task", "routing", "--rollback", "--why", "bad answers")
    assert back.exit_code == 0 and good_job.fine_tuned_model in back.output
    show = _cli("models", "show", "--task", "routing", "--alias", "production").output
    assert "[override]" in show and "rollback" in show and "bad answers" in show

    flips = _cli(
        "compare", "--task", "routing", "--flips", str(few["run_id"]), str(good_run["run_id"])
    )
    assert flips.exit_code == 0 and "fixed" in flips.output
    board = _cli("compare", "--task", "routing")
    assert "production" in board.output and "3-shot" in board.output
    rerun = _cli("eval", "--rerun", str(good_run["run_id"]), "--json")
    again = json.loads(rerun.output)
    assert again["summary"]["calls"] == 0 and again["rerun_of"] == good_run["run_id"]
    assert again["summary"]["task"]["scores"] == good_run["summary"]["task"]["scores"]
    rows = json.loads(_cli("compare", "--task", "routing", "--json").output)
    assert all(any("simulated on the sandbox" in n for n in r["notes"]) for r in rows)
    listed = _cli("models", "list")
    assert f"routing/production -> {good_job.fine_tuned_model}" in listed.output
    assert "days left" in listed.output  # the sunset of the promoted model's base
    assert "OpenAI accepts new fine-tuning jobs until 2027-01-06" in listed.output
    confusion = _cli(
        "compare", "--task", "routing", "--confusion", str(good_run["run_id"]), "--json"
    )
    assert set(json.loads(confusion.output)) == {"account", "billing", "shipping", "technical"}


@pytest.mark.slow
def test_rerun_makes_no_provider_calls(sandbox, tmp_path):
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    job = train(engine, "tickets", "good")
    provider = CountingProvider(make_provider("openai"))
    req = EvalRequest(
        task="routing",
        dataset="tickets",
        provider="openai",
        base_model=BASE,
        few_shot=3,
        job_ids=[job.id],
    )
    first = evaluate(req, engine=engine, provider_for=lambda _: provider)
    calls = provider.calls
    assert calls > 0 and sum(r.summary["calls"] for r in first) == calls
    again = evaluate(req, engine=engine, provider_for=lambda _: provider)
    assert provider.calls == calls, "the rerun must not call the provider"
    assert [r.summary["task"]["scores"] for r in again] == [
        r.summary["task"]["scores"] for r in first
    ]
    assert all(
        r.summary["cached"] == r.summary["task"]["n"] + r.summary["general"]["n"] for r in again
    )


@pytest.mark.slow
def test_break_even_gate_uses_measured_costs_and_the_jobs_training_cost(sandbox, tmp_path):
    from app.promotion.gates import check_gates, set_policy
    from db.engine import read_session
    from db.models import Job

    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    job = train(engine, "tickets", "good")
    with read_session(engine) as session:
        one_time = session.get(Job, job.id)
    one_time = one_time.actual_cost_usd or one_time.estimated_cost_usd
    assert one_time and one_time > 0
    runs = evaluate(
        EvalRequest(
            task="routing",
            dataset="tickets",
            provider="openai",
            base_model=BASE,
            few_shot=8,
            zero_shot=False,
            job_ids=[job.id],
        ),
        engine=engine,
    )
    few, tuned = runs
    c_base = few.summary["task"]["cost_per_request_usd"]
    c_ft = tuned.summary["task"]["cost_per_request_usd"]
    assert c_base > c_ft > 0  # 8 shots in every prompt cost more than the fine-tune's price
    expected = one_time / (c_base - c_ft)

    set_policy(engine, "routing", max_breakeven_requests=int(expected) + 1)
    gate = check_gates(engine, tuned.id).results[-1]
    assert gate.name == "breakeven" and gate.passed
    assert gate.numbers["breakeven_requests"] == pytest.approx(expected)
    set_policy(engine, "routing", max_breakeven_requests=int(expected) - 1)
    gate = check_gates(engine, tuned.id).results[-1]
    assert not gate.passed and f"after {expected:,.0f} requests" in gate.detail


@pytest.mark.slow
def test_llm_judge_stops_the_run_at_its_spending_cap(sandbox, tmp_path):
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    job = train(engine, "tickets", "good")
    cap = 0.00002  # a few judge calls' worth at gpt-4o-mini prices
    runs = evaluate(
        EvalRequest(
            task="routing",
            dataset="tickets",
            provider="openai",
            base_model=BASE,
            zero_shot=False,
            few_shot=0,
            job_ids=[job.id],
            concurrency=1,
            general=False,
            judge={"provider": "openai", "model": BASE, "max_spend_usd": cap},
        ),
        engine=engine,
    )
    run = runs[0]
    assert run.status == "stopped" and "spending cap" in run.summary["stopped"]
    judge = run.summary["judge"]
    assert judge["spent_usd"] >= cap and judge["calls"] >= 1
    assert 0 < run.summary["task"]["n"] < 20  # stopped before the 20 held-out examples
    assert "judge" in run.summary["task"]["scores"]

    result = _cli(
        "eval",
        "--task",
        "routing",
        "--dataset",
        "tickets",
        "--provider",
        "openai",
        "--base",
        BASE,
        "--judge-provider",
        "openai",
        "--judge-model",
        "nope-model",
        "--judge-max-spend",
        "1",
    )
    assert result.exit_code == 1 and "no price for judge model 'nope-model'" in result.output


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = _cli(
        "eval", "--task", "routing", "--dataset", "nope", "--provider", "openai", "--base", BASE
    )
    assert result.exit_code == 1 and "error: no dataset 'nope'" in result.output
    assert "Traceback" not in result.output
    add_ticket_datasets(tmp_path)
    bad = _cli(
        "eval",
        "--task",
        "routing",
        "--dataset",
        "tickets",
        "--provider",
        "openai",
        "--base",
        BASE,
        "--scorer",
        "bleu",
    )
    assert bad.exit_code == 1 and "unknown scorer 'bleu'" in bad.output
    none = _cli("promote", "--task", "routing", "--rollback")
    assert none.exit_code == 1 and "has no alias 'production'" in none.output
    missing = _cli("models", "export", "--alias", "production")
    assert missing.exit_code == 1 and "exists in 0 tasks" in missing.output
    both = _cli("promote", "--task", "routing")
    assert both.exit_code == 1 and "--run RUN_ID or --model MODEL" in both.output
    unseen = _cli("promote", "--task", "routing", "--model", "ft:x")
    assert unseen.exit_code == 1 and "no finished eval of 'ft:x'" in unseen.output
    nothing = _cli(
        "migrate",
        "--task",
        "routing",
        "--alias",
        "production",
        "--to",
        "local",
        "--model",
        str(tmp_path),
    )
    assert nothing.exit_code == 1 and "has no alias 'production' to migrate" in nothing.output
