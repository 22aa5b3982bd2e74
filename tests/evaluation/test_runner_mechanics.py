"""Runner mechanics (concurrency, retries, cache, storage, judge cap) with a small
deterministic provider registered for these unit tests only. End-to-end evaluation runs
against the real sandbox emulator and the local provider (test_end_to_end_*.py)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import EvalError, rerun_eval, run_eval
from db.engine import read_session
from db.models import EvalResult, EvalRun
from providers.base import Capabilities
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples

_config = routing_config
_examples = routing_examples


def test_run_stores_results_and_a_rerun_makes_no_provider_calls():
    engine = get_engine()
    provider = EchoLabelProvider()
    examples = [split_example(e, i) for i, e in enumerate(_examples())]
    candidate = Candidate("fine_tuned", "echo", "good")
    run = run_eval(candidate, examples, _config(), provider=provider, engine=engine)
    assert run.status == "succeeded"
    n_general = run.summary["general"]["n"]
    assert provider.calls == len(examples) + n_general
    assert run.summary["task"]["quality"] == 1.0
    assert run.summary["task"]["confusion"]["billing"] == {"billing": 2}
    with read_session(engine) as s:
        rows = list(s.exec(select(EvalResult).where(EvalResult.run_id == run.id)))
    assert len(rows) == len(examples) + n_general
    assert all(r.latency_ms is not None and r.prompt_tokens and not r.cached for r in rows)

    before = provider.calls
    again = rerun_eval(run.id, provider=provider, engine=engine, examples=examples)
    assert provider.calls == before, "a rerun must be served from the cache"
    assert again.id != run.id and again.summary["calls"] == 0
    assert again.summary["cached"] == len(rows)
    assert again.summary["task"]["scores"] == run.summary["task"]["scores"]


def test_few_shot_draws_the_same_shots_for_the_same_seed():
    engine = get_engine()
    provider = EchoLabelProvider()
    train = _examples(10)
    examples = [split_example(e, i) for i, e in enumerate(_examples(3))]
    cfg = _config(general=False)
    a = run_eval(
        Candidate("few_shot", "echo", "base", k=3, seed=7),
        examples,
        cfg,
        provider=provider,
        engine=engine,
        train_examples=train,
    )
    calls = provider.calls
    b = run_eval(
        Candidate("few_shot", "echo", "base", k=3, seed=7),
        examples,
        cfg,
        provider=provider,
        engine=engine,
        train_examples=train,
    )
    assert provider.calls == calls  # same prompts: all cached
    c = run_eval(
        Candidate("few_shot", "echo", "base", k=3, seed=8),
        examples,
        cfg,
        provider=provider,
        engine=engine,
        train_examples=train,
    )
    # Another seed draws other shots (10 choose 3), so every prompt is new: no cache hit.
    assert provider.calls == calls + len(examples)
    assert c.summary["calls"] == len(examples) and c.summary["cached"] == 0
    assert a.config["candidate"]["k"] == 3 and b.summary["cached"] == 3


def test_retryable_errors_are_retried():
    engine = get_engine()
    provider = EchoLabelProvider(fail_first=2)
    examples = [split_example(e, i) for i, e in enumerate(_examples(2))]
    run = run_eval(
        Candidate("fine_tuned", "echo", "good"),
        examples,
        _config(general=False, concurrency=1),
        provider=provider,
        engine=engine,
    )
    assert run.status == "succeeded" and run.summary["task"]["n"] == 2


def test_a_permanent_error_fails_the_run_with_the_reason():
    engine = get_engine()
    provider = EchoLabelProvider(fail_first=100, retryable=False)
    examples = [split_example(e, i) for i, e in enumerate(_examples(2))]
    with pytest.raises(EvalError, match="overloaded"):
        run_eval(
            Candidate("fine_tuned", "echo", "good"),
            examples,
            _config(general=False),
            provider=provider,
            engine=engine,
        )
    with read_session(engine) as s:
        run = s.exec(select(EvalRun)).one()
    assert run.status == "failed" and "overloaded" in run.summary["error"]


def test_a_failing_user_scorer_fails_the_run_with_the_reason(monkeypatch):
    from importlib.metadata import EntryPoint

    from app.evaluation import scorers

    ep = EntryPoint(
        "broken",
        "tests.evaluation.test_runner_mechanics:_bad_scorer",
        scorers.SCORER_ENTRY_POINT_GROUP,
    )
    monkeypatch.setattr(scorers, "entry_points", lambda group: [ep])
    engine = get_engine()
    examples = [split_example(e, i) for i, e in enumerate(_examples(2))]
    config = _config(general=False)
    config.scorers = ["exact", "plugin:broken"]
    with pytest.raises(EvalError, match="must return a number"):
        run_eval(
            Candidate("fine_tuned", "echo", "good"),
            examples,
            config,
            provider=EchoLabelProvider(),
            engine=engine,
        )
    with read_session(engine) as s:
        run = s.exec(select(EvalRun)).one()
    assert run.status == "failed" and "plugin:broken" in run.summary["error"]


def _bad_scorer(output, expected):
    return "great"


class _BatchingEcho(EchoLabelProvider):
    """Echo with batched generation; single calls would fail the run if they were made."""

    def __init__(self, declares: bool) -> None:
        super().__init__()
        self.capabilities = Capabilities(batch_completion=declares)
        self.batches = 0

    def complete_batch(self, model, conversations, *, max_tokens=256, temperature=0.0, **kw):
        self.batches += 1
        return [EchoLabelProvider.complete(self, model, c) for c in conversations]


@pytest.mark.parametrize("declares", [True, False])
def test_batched_completion_is_used_only_when_declared(declares):
    """The runner asks the provider's capabilities, not whether a method happens to exist."""
    provider = _BatchingEcho(declares)
    examples = [split_example(e, i) for i, e in enumerate(_examples())]
    run = run_eval(
        Candidate("fine_tuned", "echo", "good"),
        examples,
        _config(general=False),
        provider=provider,
        engine=get_engine(),
    )
    assert run.status == "succeeded" and run.summary["task"]["quality"] == 1.0
    assert (provider.batches > 0) is declares
    assert provider.calls == len(examples)
