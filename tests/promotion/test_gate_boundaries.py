"""The baseline and forgetting gates at their boundaries, with fractional scores: a
candidate just inside the limit passes, one exactly at it passes, one just beyond it is
refused. Eval runs come from the real runner; the provider answers a chosen share of the
task examples and of the general-ability set right, so every score is a fraction."""

from __future__ import annotations

import re
import threading

import pytest

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.general import general_items
from app.evaluation.runner import run_eval
from app.promotion import gates
from providers.base import Provider
from providers.types import Completion
from tests.evaluation.helpers import GENERAL_ANSWERS, routing_config, routing_examples

N_TASK = 20  # quality moves in steps of 0.05
N_GENERAL = len(general_items())  # general ability moves in steps of 1/26


class PartlyRightProvider(Provider):
    """Each model answers its first ``task`` routing examples and its first ``general``
    general-ability items right, and the rest wrong."""

    name = "echo"
    display_name = "Partly right (tests)"

    def __init__(self, models: dict[str, tuple[int, int]]) -> None:
        self.models = models
        self._lock = threading.Lock()
        self.general = {item.prompt: (i, item) for i, item in enumerate(general_items())}

    def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
        right_task, right_general = self.models[model]
        last = [m for m in messages if m.role == "user"][-1].content
        if last in self.general:
            index, item = self.general[last]
            right = index < right_general
            text = GENERAL_ANSWERS[item.check](item.answer) if right else "unknown"
        else:
            index = int(re.search(r"ticket number (\d+)", last).group(1))
            text = last.split()[0] if index < right_task else "unknown"
        return Completion(text=text, prompt_tokens=10, completion_tokens=2)

    prepare = create = refresh = cancel = list_base_models = None  # unused here


PartlyRightProvider.__abstractmethods__ = frozenset()


@pytest.fixture
def evaluate():
    engine = get_engine()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(N_TASK))]
    train = routing_examples(30)[N_TASK:]

    def run(kind: str, model: str, task: int, general: int, **kw):
        provider = PartlyRightProvider({model: (task, general)})
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


def _gate(report: gates.GateReport, name: str) -> gates.GateResult:
    return next(r for r in report.results if r.name == name)


def test_the_scores_are_fractions(evaluate):
    base = evaluate("few_shot", "base", task=10, general=20, k=3)
    assert base.summary["task"]["quality"] == pytest.approx(0.5)
    assert base.summary["general"]["score"] == pytest.approx(20 / N_GENERAL)


@pytest.mark.parametrize(
    ("right", "passes"),
    [(13, True), (12, True), (11, False)],
    ids=["just over the margin", "exactly at the margin", "just under the margin"],
)
def test_baseline_gate_at_its_margin(evaluate, right, passes):
    evaluate("few_shot", "base", task=10, general=N_GENERAL, k=3)  # quality 0.50
    gates.set_policy(evaluate.engine, "routing", min_margin_over_baseline=0.10)
    candidate = evaluate(
        "fine_tuned", f"ft-{right}", task=right, general=N_GENERAL, base_model="base"
    )
    result = _gate(gates.check_gates(evaluate.engine, candidate.id), "baseline")
    assert result.numbers["candidate"] == pytest.approx(right / N_TASK)
    assert result.numbers["baseline"] == pytest.approx(0.5)
    assert result.passed is passes, result.detail


def test_baseline_gate_refuses_a_tie_even_with_no_margin(evaluate):
    evaluate("few_shot", "base", task=10, general=N_GENERAL, k=3)
    gates.set_policy(evaluate.engine, "routing", min_margin_over_baseline=0.0)
    tie = evaluate("fine_tuned", "ft-tie", task=10, general=N_GENERAL, base_model="base")
    above = evaluate("fine_tuned", "ft-above", task=11, general=N_GENERAL, base_model="base")
    assert not _gate(gates.check_gates(evaluate.engine, tie.id), "baseline").passed
    assert _gate(gates.check_gates(evaluate.engine, above.id), "baseline").passed


@pytest.mark.parametrize(
    ("right", "passes"),
    [(21, True), (20, True), (19, False)],
    ids=["just under the limit", "exactly at the limit", "just over the limit"],
)
def test_general_gate_at_its_limit(evaluate, right, passes):
    """Base 24/26 right; the limit is a drop of 4/26: 3/26 and 4/26 pass, 5/26 fails."""
    evaluate("few_shot", "base", task=10, general=24, k=3)
    gates.set_policy(evaluate.engine, "routing", max_general_drop=4 / N_GENERAL)
    candidate = evaluate("fine_tuned", f"ft-{right}", task=20, general=right, base_model="base")
    report = gates.check_gates(evaluate.engine, candidate.id)
    result = _gate(report, "general")
    assert result.numbers["drop"] == pytest.approx((24 - right) / N_GENERAL)
    assert result.passed is passes, result.detail
    assert _gate(report, "baseline").passed  # only the general gate decides here
    assert report.passed is passes


def test_general_gate_default_limit_is_five_points(evaluate):
    """With the default 0.05: a drop of 1/26 (0.038) passes, 2/26 (0.077) does not."""
    evaluate("few_shot", "base", task=10, general=26, k=3)
    one = evaluate("fine_tuned", "ft-one", task=20, general=25, base_model="base")
    two = evaluate("fine_tuned", "ft-two", task=20, general=24, base_model="base")
    assert _gate(gates.check_gates(evaluate.engine, one.id), "general").passed
    assert not _gate(gates.check_gates(evaluate.engine, two.id), "general").passed
