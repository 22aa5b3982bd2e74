"""A run's summary, computed from its stored per-example results (so it can always be
recomputed from the database)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import select

from app.evaluation import general as general_set
from app.evaluation.scorers import LabelAccuracy, Scorer
from db.engine import read_session
from db.models import EvalResult

TASK_SUITE = "task"


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def primary_quality(scorers: Sequence[Scorer]) -> str | None:
    """The scorer that defines a run's quality: the first quality scorer named."""
    return next((s.spec for s in scorers if s.kind == "quality"), None)


def results_of(engine: Engine, run_id: int, suite: str | None = None) -> list[EvalResult]:
    with read_session(engine) as session:
        query = select(EvalResult).where(EvalResult.run_id == run_id)
        if suite:
            query = query.where(EvalResult.suite == suite)
        return list(session.exec(query.order_by(EvalResult.suite, EvalResult.example_index)))


def summarize_run(engine: Engine, run_id: int, scorers: Sequence[Scorer], *, calls: int) -> dict:
    """Task scores per scorer, quality and format compliance, confusion table, general
    score, latency, tokens and cost (cost per 1,000 requests from the task prompts)."""
    results = results_of(engine, run_id)
    task = [r for r in results if r.suite == TASK_SUITE]
    general = [r for r in results if r.suite == general_set.SUITE]
    per_scorer = {s.spec: mean([(r.scores or {}).get(s.spec) for r in task]) for s in scorers}
    if any("judge" in (r.scores or {}) for r in task):
        per_scorer["judge"] = mean([(r.scores or {}).get("judge") for r in task])
    format_specs = [s.spec for s in scorers if s.kind == "format"]
    primary = primary_quality(scorers)
    label = next((s for s in scorers if isinstance(s, LabelAccuracy)), None)
    costs = [r.cost_usd for r in task]
    mean_cost = mean(costs) if task and all(c is not None for c in costs) else None
    return {
        "task": {
            "n": len(task),
            "scores": per_scorer,
            "primary": primary,
            "quality": per_scorer.get(primary) if primary else None,
            "format": mean([per_scorer[s] for s in format_specs]) if format_specs else None,
            "confusion": label.confusion((r.expected, r.output or "") for r in task)
            if label
            else None,
            "mean_latency_ms": mean([r.latency_ms for r in task if not r.cached]),
            "mean_prompt_tokens": mean([r.prompt_tokens for r in task]),
            "mean_completion_tokens": mean([r.completion_tokens for r in task]),
            "cost_per_request_usd": mean_cost,
            "cost_per_1k_usd": mean_cost * 1000 if mean_cost is not None else None,
        },
        "general": {
            "n": len(general),
            "score": mean([(r.scores or {}).get("general") for r in general]),
        }
        if general
        else None,
        "calls": calls,
        "cached": sum(1 for r in results if r.cached),
        "spent_usd": sum(r.cost_usd or 0.0 for r in results if not r.cached),
    }
