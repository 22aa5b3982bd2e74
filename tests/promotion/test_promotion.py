"""Promotion mechanics: gates, atomic history, rollback, export, sunsets. Eval runs come
from the real runner (with the deterministic unit-test provider)."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlmodel import select

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import run_eval
from app.promotion import aliases, export, gates, sunsets
from db.engine import read_session
from db.models import Alias, Promotion
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples


@pytest.fixture
def evals():
    """Runs a candidate on the routing eval set; returns its EvalRun."""
    engine = get_engine()
    provider = EchoLabelProvider()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]
    train = routing_examples(12)

    def run(kind: str, model: str, **kw):
        candidate = Candidate(kind, "echo", model, **kw)
        return run_eval(
            candidate,
            examples,
            routing_config(),
            provider=provider,
            engine=engine,
            train_examples=train,
        )

    run.engine = engine
    return run


def test_a_model_that_beats_the_baseline_is_promoted_and_recorded(evals):
    evals("few_shot", "base", k=3)
    good = evals("fine_tuned", "good", base_model="base")
    row, report = aliases.promote(
        evals.engine,
        task="routing",
        alias="production",
        run_id=good.id,
        who="ada",
        why="beats 3-shot",
    )
    assert report.passed and [r.name for r in report.results] == ["baseline", "general"]
    assert row.who == "ada" and row.why == "beats 3-shot" and row.eval_run_id == good.id
    assert row.action == "promote" and not row.overridden and row.previous_id is None
    holder = aliases.current(evals.engine, "routing", "production")
    assert holder.promotion.model == "good" and holder.promotion.gates["passed"] is True


def test_a_failing_gate_refuses_with_the_numbers(evals):
    evals("few_shot", "base", k=3)
    bad = evals("fine_tuned", "bad", base_model="base")
    with pytest.raises(aliases.GateRefused) as info:
        aliases.promote(evals.engine, task="routing", alias="production", run_id=bad.id, who="ada")
    message = str(info.value)
    assert "baseline: quality 0.000 does not beat the few-shot baseline 0.000" in message
    assert "general: general ability 0.000 vs base 1.000" in message and "drop +1.000" in message
    assert aliases.current(evals.engine, "routing", "production") is None


def test_forgetting_is_caught_by_the_general_gate(evals):
    evals("few_shot", "base", k=3)
    forgetful = evals("fine_tuned", "forgetful", base_model="base")
    report = gates.check_gates(evals.engine, forgetful.id)
    assert [r.name for r in report.failed] == ["general"]
    assert report.failed[0].numbers["drop"] == pytest.approx(1.0)


def test_margin_gate_is_configurable_per_task(evals):
    evals("few_shot", "base", k=3)
    good = evals("fine_tuned", "good", base_model="base")
    gates.set_policy(evals.engine, "routing", min_margin_over_baseline=1.5)
    report = gates.check_gates(evals.engine, good.id)
    assert not report.passed and report.failed[0].name == "baseline"
    assert report.failed[0].numbers == {
        "candidate": 1.0,
        "baseline": 0.0,
        "margin": 1.5,
        "baseline_run": report.failed[0].numbers["baseline_run"],
    }


def test_no_baseline_means_no_promotion(evals):
    good = evals("fine_tuned", "good", base_model="base")
    with pytest.raises(aliases.GateRefused, match="no few-shot baseline"):
        aliases.promote(evals.engine, task="routing", alias="production", run_id=good.id, who="ada")


def test_override_needs_a_reason_and_is_recorded(evals):
    evals("few_shot", "base", k=3)
    bad = evals("fine_tuned", "bad", base_model="base")
    with pytest.raises(aliases.PromotionError, match="must say why"):
        aliases.promote(
            evals.engine, task="routing", alias="staging", run_id=bad.id, who="ada", override=True
        )
    row, report = aliases.promote(
        evals.engine,
        task="routing",
        alias="staging",
        run_id=bad.id,
        who="ada",
        override=True,
        why="demo for the customer",
    )
    assert row.overridden and not report.passed and row.gates["passed"] is False


def test_rollback_walks_back_through_the_history(evals):
    evals("few_shot", "base", k=3)
    first = evals("fine_tuned", "good", base_model="base")
    second = evals("checkpoint", "forgetful", base_model="base")
    third = evals("fine_tuned", "bad", base_model="base")
    e = evals.engine
    aliases.promote(e, task="routing", alias="production", run_id=first.id, who="a")
    aliases.promote(
        e,
        task="routing",
        alias="production",
        run_id=second.id,
        who="b",
        override=True,
        why="hotfix",
    )
    aliases.promote(
        e,
        task="routing",
        alias="production",
        run_id=third.id,
        who="c",
        override=True,
        why="experiment",
    )
    back = aliases.rollback(e, task="routing", alias="production", who="d", why="bad outputs")
    assert back.action == "rollback" and back.model == "forgetful" and back.who == "d"
    assert "bad outputs" in back.why and "rollback from" in back.why
    assert aliases.rollback(e, task="routing", alias="production", who="d").model == "good"
    with pytest.raises(aliases.PromotionError, match="no earlier one"):
        aliases.rollback(e, task="routing", alias="production", who="d")
    history = aliases.history(e, "routing", "production")
    assert [p.action for p in history] == ["rollback", "rollback", "promote", "promote", "promote"]
    with read_session(e) as s:
        assert len(s.exec(select(Alias)).all()) == 1
        assert len(s.exec(select(Promotion)).all()) == 5


def test_baselines_cannot_be_promoted(evals):
    base = evals("few_shot", "base", k=3)
    with pytest.raises(aliases.PromotionError, match="not a trained model"):
        aliases.promote(evals.engine, task="routing", alias="production", run_id=base.id, who="a")


def test_export_json_and_env_without_secrets(evals, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    evals("few_shot", "base", k=3)
    good = evals("fine_tuned", "good", base_model="base")
    aliases.promote(evals.engine, task="routing", alias="production", run_id=good.id, who="a")
    record = export.export_record(evals.engine, "routing", "production")
    assert record["provider"] == "echo" and record["model"] == "good"
    text = export.render(record, "json")
    assert json.loads(text)["alias"] == "production" and "sk-secret" not in text
    env = export.render(record, "env")
    assert "FTM_MODEL=good\n" in env and "FTM_MODEL_PROVIDER=echo\n" in env
    assert "sk-secret" not in env
    with pytest.raises(aliases.PromotionError, match="no alias 'staging'"):
        export.export_record(evals.engine, "routing", "staging")


def test_sunsets_of_hosted_bases():
    today = date(2026, 11, 28)
    s = sunsets.sunset_of("openai", "ft:gpt-4o-mini-2024-07-18:org:route:abc123", today=today)
    assert s.retires == date(2027, 1, 14) and s.days_left == 47 and "47 days left" in s.message
    assert sunsets.sunset_of("openai", "ft:gpt-4.1-nano-2025-04-14:o::x", today=today) is None
    assert sunsets.sunset_of("local", "/models/adapter", today=today) is None
    cutoff = sunsets.job_creation_cutoff("openai", today)
    assert (cutoff.last_day, cutoff.days_left) == (date(2027, 1, 6), 39)
    assert sunsets.job_creation_cutoff("local", today) is None


def test_concurrent_promotions_serialize_into_one_linear_history(evals):
    """Eight writers promote at once: every change is one transaction, so the history is a
    single chain (each row's previous is the row before it) and the alias points at the
    last one — no lost update, no two rows claiming the same predecessor."""
    import threading

    evals("few_shot", "base", k=3)
    good = evals("fine_tuned", "good", base_model="base")
    barrier = threading.Barrier(8)
    errors = []

    def worker(i):
        barrier.wait()
        try:
            aliases.promote(
                evals.engine, task="routing", alias="production", run_id=good.id, who=f"writer-{i}"
            )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = aliases.history(evals.engine, "routing", "production")  # newest first
    assert len(history) == 8
    assert [p.previous_id for p in history] == [p.id for p in history[1:]] + [None]
    assert aliases.current(evals.engine, "routing", "production").promotion.id == history[0].id
