"""Recorded evaluations for the migration-plan tests (`tests/promotion/test_plan.py`)
and the plan screen's snapshot: one task whose production alias is held by an OpenAI
fine-tune and staging by a local adapter, and candidates of every kind evaluated on the
same eval set. Real eval runner and database; the completions come from a deterministic
test provider that answers for real model ids by their behaviour."""

from __future__ import annotations

from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import run_eval
from app.promotion import aliases
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples

HOSTED_BASE = "gpt-4o-mini-2024-07-18"
HOLDER = f"ft:{HOSTED_BASE}:org:routing:held"
HOSTED_OTHER = f"ft:{HOSTED_BASE}:org:routing:other"
BIG, SMALL, SMALLEST = "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-0.5B"
# model id -> how the echo provider answers (see EchoLabelProvider)
BEHAVIOUR = {
    HOSTED_BASE: "base",
    HOLDER: "good",
    HOSTED_OTHER: "good",
    BIG: "base",
    SMALL: "base",
    SMALLEST: "base",
    "adapters/good-8b": "good",
    "adapters/good-1b": "good",
    "adapters/forgetful-05b": "forgetful",
}


class ByName(EchoLabelProvider):
    """The echo provider, answering for real model ids by their behaviour above."""

    def complete(self, model, messages, **kw):
        return super().complete(BEHAVIOUR[model], messages, **kw)


def record_plan_candidates() -> dict:
    """Evaluate every candidate and promote the two holders; the runs by role."""
    engine = get_engine()
    provider = ByName()
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]

    def run(kind, provider_name, model, **kw):
        return run_eval(
            Candidate(kind, provider_name, model, **kw),
            examples,
            routing_config(),
            provider=provider,
            engine=engine,
            train_examples=routing_examples(12),
        )

    run("few_shot", "openai", HOSTED_BASE, k=3)
    run("zero_shot", "openai", HOSTED_BASE)
    for base in (BIG, SMALL, SMALLEST):
        run("zero_shot", "local", base)
    runs = {
        "holder": run("fine_tuned", "openai", HOLDER, base_model=HOSTED_BASE),
        "hosted_other": run("fine_tuned", "openai", HOSTED_OTHER, base_model=HOSTED_BASE),
        "big": run("fine_tuned", "local", "adapters/good-8b", base_model=BIG),
        "small": run("fine_tuned", "local", "adapters/good-1b", base_model=SMALL),
        "forgetful": run("fine_tuned", "local", "adapters/forgetful-05b", base_model=SMALLEST),
    }
    for alias, key in (("production", "holder"), ("staging", "big")):
        aliases.promote(engine, task="routing", alias=alias, run_id=runs[key].id, who="ci")
    return runs
