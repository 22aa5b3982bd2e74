"""Promotion gates, configurable per task (gate_policies):

1. **baseline** — the candidate's task quality beats the few-shot baseline (the base
   model with k examples in the prompt, on the same eval set and scorers) by at least
   ``min_margin_over_baseline``;
2. **general** — its general-ability score is at most ``max_general_drop`` below its
   base model's (catastrophic forgetting);
3. **break-even** (only when ``max_breakeven_requests`` is set) — its training cost is paid
   back, by being cheaper per request than the few-shot baseline, within that many
   requests.

Every result carries the numbers, so a refusal says exactly what failed and by how much.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import Engine
from sqlmodel import select

from app.costs.money import usd
from app.evaluation.pricing import canonical_model
from db.engine import read_session, write_session
from db.models import EvalRun, GatePolicy, Job


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: str
    numbers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GateReport:
    task: str
    run_id: int | None
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "results": [asdict(r) for r in self.results]}


def get_policy(engine: Engine, task: str) -> GatePolicy:
    """The task's gates, or the defaults when none were set."""
    with read_session(engine) as session:
        return session.get(GatePolicy, task) or GatePolicy(task=task)


def set_policy(
    engine: Engine,
    task: str,
    *,
    min_margin_over_baseline: float | None = None,
    max_general_drop: float | None = None,
    max_breakeven_requests: int | None = None,
    clear_breakeven: bool = False,
) -> GatePolicy:
    """Change some of a task's gates; the others keep their value."""
    with write_session(engine) as session:
        policy = session.get(GatePolicy, task) or GatePolicy(task=task)
        if min_margin_over_baseline is not None:
            policy.min_margin_over_baseline = min_margin_over_baseline
        if max_general_drop is not None:
            policy.max_general_drop = max_general_drop
        if max_breakeven_requests is not None:
            policy.max_breakeven_requests = max_breakeven_requests
        if clear_breakeven:
            policy.max_breakeven_requests = None
        session.add(policy)
    return get_policy(engine, task)


def _quality(run: EvalRun) -> float | None:
    return ((run.summary or {}).get("task") or {}).get("quality")


def _general(run: EvalRun) -> float | None:
    return ((run.summary or {}).get("general") or {}).get("score")


def _cost(run: EvalRun) -> float | None:
    from app.evaluation.pricing import per_request_cost

    return per_request_cost(run)[0]


def _same_eval(a: EvalRun, b: EvalRun) -> bool:
    ca, cb = a.config or {}, b.config or {}
    return (
        a.task == b.task
        and a.dataset_id == b.dataset_id
        and a.eval_split == b.eval_split
        and ca.get("scorers") == cb.get("scorers")
        and ca.get("limit") == cb.get("limit")
    )


def find_baseline(engine: Engine, run: EvalRun) -> EvalRun | None:
    """The newest finished few-shot run on the same eval set with the same scorers."""
    with read_session(engine) as session:
        runs = session.exec(
            select(EvalRun)
            .where(
                EvalRun.task == run.task,
                EvalRun.candidate_kind == "few_shot",
                EvalRun.status == "succeeded",
            )
            .order_by(EvalRun.id.desc())
        ).all()
    return next((r for r in runs if _same_eval(r, run)), None)


def reference_base_of(run: EvalRun) -> str | None:
    candidate = (run.config or {}).get("candidate") or {}
    if run.candidate_kind in ("zero_shot", "few_shot"):
        return run.model
    from app.promotion.targets import reference_base

    return reference_base(run.provider, run.model, candidate.get("base_model"))


def find_base_general(engine: Engine, run: EvalRun) -> EvalRun | None:
    """The newest finished run of the candidate's base model that has a general score (the
    general set is asked plainly, so zero-shot and few-shot runs both qualify)."""
    base = canonical_model(reference_base_of(run))
    if base is None:
        return None
    with read_session(engine) as session:
        runs = session.exec(
            select(EvalRun)
            .where(
                EvalRun.candidate_kind.in_(["zero_shot", "few_shot"]), EvalRun.status == "succeeded"
            )
            .order_by(EvalRun.id.desc())
        ).all()
    return next(
        (r for r in runs if canonical_model(r.model) == base and _general(r) is not None), None
    )


def training_cost(engine: Engine, run: EvalRun) -> tuple[float | None, str]:
    """The one-time cost of the candidate (its job's actual cost, else its estimate)."""
    if run.job_id is None:
        return None, "no job recorded for this model, so its training cost is unknown"
    with read_session(engine) as session:
        job = session.get(Job, run.job_id)
    if job is None:
        return None, f"job {run.job_id} is gone"
    if job.actual_cost_usd is not None:
        return job.actual_cost_usd, f"job {job.id} actual cost"
    if job.estimated_cost_usd is not None:
        return job.estimated_cost_usd, f"job {job.id} estimated cost (no actual figure yet)"
    return None, f"job {job.id} has neither an actual nor an estimated cost"


def check_gates(engine: Engine, run_id: int) -> GateReport:
    """Run every gate of the run's task against eval run ``run_id``."""
    with read_session(engine) as session:
        run = session.get(EvalRun, run_id)
    if run is None:
        raise LookupError(f"no eval run with id {run_id}")
    policy = get_policy(engine, run.task)
    results = [_baseline_gate(engine, run, policy), _general_gate(engine, run, policy)]
    if policy.max_breakeven_requests is not None:
        results.append(_breakeven_gate(engine, run, policy))
    return GateReport(task=run.task, run_id=run.id, results=results)


def _baseline_gate(engine: Engine, run: EvalRun, policy: GatePolicy) -> GateResult:
    margin = policy.min_margin_over_baseline
    quality = _quality(run)
    if run.status != "succeeded" or quality is None:
        return GateResult("baseline", False, f"eval run {run.id} did not finish ({run.status})")
    baseline = find_baseline(engine, run)
    if baseline is None:
        return GateResult(
            "baseline",
            False,
            f"no few-shot baseline on the same eval set for task {run.task!r}; run "
            f"`ftm eval --task {run.task} --few-shot K` first",
        )
    base_q = _quality(baseline) or 0.0
    needed = base_q + margin
    numbers = {
        "candidate": quality,
        "baseline": base_q,
        "margin": margin,
        "baseline_run": baseline.id,
    }
    # "Beat" is strict: a tie with the baseline is no reason to fine-tune.
    ok = quality > base_q + 1e-12 and quality >= needed - 1e-12
    verdict = "beats" if ok else "does not beat"
    return GateResult(
        "baseline",
        ok,
        f"quality {quality:.3f} {verdict} the few-shot baseline {base_q:.3f} "
        f"(run {baseline.id}, {baseline.model}) by the required margin {margin:+.3f}",
        numbers,
    )


def _general_gate(engine: Engine, run: EvalRun, policy: GatePolicy) -> GateResult:
    limit = policy.max_general_drop
    score = _general(run)
    if score is None:
        return GateResult(
            "general",
            False,
            f"eval run {run.id} has no general-ability score (run it without --no-general)",
        )
    base_run = find_base_general(engine, run)
    if base_run is None:
        return GateResult(
            "general",
            False,
            f"no general-ability score for the base model {reference_base_of(run)!r}; "
            "evaluate the base (zero-shot or few-shot) first",
        )
    base_score = _general(base_run)
    drop = base_score - score
    ok = drop <= limit + 1e-12
    return GateResult(
        "general",
        ok,
        f"general ability {score:.3f} vs base {base_score:.3f} (run {base_run.id}): "
        f"drop {drop:+.3f}, allowed {limit:.3f}",
        {
            "candidate": score,
            "base": base_score,
            "drop": drop,
            "max_drop": limit,
            "base_run": base_run.id,
        },
    )


def _breakeven_gate(engine: Engine, run: EvalRun, policy: GatePolicy) -> GateResult:
    limit = policy.max_breakeven_requests
    baseline = find_baseline(engine, run)
    one_time, source = training_cost(engine, run)
    c_ft, c_base = _cost(run), _cost(baseline) if baseline else None
    if one_time is None or c_ft is None or c_base is None:
        missing = source if one_time is None else "per-request prices of the candidate or baseline"
        return GateResult("breakeven", False, f"cannot tell when it pays back: {missing}")
    from app.costs.breakeven import break_even_requests

    requests = break_even_requests(one_time, c_ft, c_base)
    numbers = {
        "one_time_usd": one_time,
        "baseline_per_request": c_base,
        "candidate_per_request": c_ft,
        "breakeven_requests": requests,
        "max_requests": limit,
    }
    if requests is None:
        return GateResult(
            "breakeven",
            False,
            f"never pays back: {usd(c_ft)}/request is not cheaper than the few-shot "
            f"baseline's {usd(c_base)}",
            numbers,
        )
    return GateResult(
        "breakeven",
        requests <= limit,
        f"pays back {usd(one_time)} ({source}) after {requests:,.0f} requests; allowed {limit:,}",
        numbers,
    )
