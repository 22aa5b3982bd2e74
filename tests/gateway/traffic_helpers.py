"""Eval runs and promotions made through the real evaluation and promotion APIs, for the
routing, canary and shadow tests."""

from __future__ import annotations

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import run_eval
from app.promotion import aliases
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples

TASK = "routing"


def eval_runs(*models: str) -> dict[str, int]:
    """One fine-tuned eval run per model of task ``routing`` (after a few-shot baseline),
    by model name."""
    engine = get_engine()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]
    out = {}
    for kind, model, kw in [("few_shot", "base", {"k": 3})] + [
        ("fine_tuned", m, {"base_model": "base"}) for m in models
    ]:
        run = run_eval(
            Candidate(kind, "echo", model, **kw),
            examples,
            routing_config(),
            provider=EchoLabelProvider(),
            engine=engine,
            train_examples=routing_examples(12),
        )
        out[model] = run.id
    return out


def promote(run_id: int, alias: str = "production") -> None:
    aliases.promote(
        get_engine(), task=TASK, alias=alias, run_id=run_id, who="ci", override=True, why="test"
    )
