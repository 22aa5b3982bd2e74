"""Side-by-side comparison of a task's candidates, and the examples that flipped between
two runs.

Per candidate (its newest finished run on the eval set): task quality, format compliance,
general-ability score and forgetting delta against its base, measured cost per 1,000
requests (real token counts of the eval prompts x catalog prices; a local model as
self-hosted GPU time, `app.evaluation.pricing.per_request_cost`), and the break-even
request count against the few-shot baseline (app.costs.breakeven over the job's training
cost).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Engine
from sqlmodel import select

from app.evaluation.pricing import per_request_cost
from app.evaluation.summary import TASK_SUITE, results_of
from db.engine import read_session
from db.models import Dataset, EvalRun, Job


@dataclass(frozen=True)
class Row:
    run_id: int
    kind: str
    provider: str
    model: str
    label: str
    quality: float | None
    format: float | None
    general: float | None
    forgetting_delta: float | None
    cost_per_1k_usd: float | None
    breakeven_requests: float | None
    notes: tuple[str, ...]
    n: int
    job_id: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _label(run: EvalRun) -> str:
    candidate = (run.config or {}).get("candidate") or {}
    if run.candidate_kind == "few_shot":
        return f"{run.model} ({candidate.get('k')}-shot)"
    if run.candidate_kind == "zero_shot":
        return f"{run.model} (zero-shot)"
    return run.model


def latest_runs(engine: Engine, task: str, dataset_id: int | None = None) -> list[EvalRun]:
    """The newest finished run of each candidate of ``task`` (one per model and prompt)."""
    with read_session(engine) as session:
        query = select(EvalRun).where(
            EvalRun.task == task, EvalRun.status.in_(["succeeded", "stopped"])
        )
        if dataset_id is not None:
            query = query.where(EvalRun.dataset_id == dataset_id)
        runs = list(session.exec(query.order_by(EvalRun.id.desc())))
    seen: dict[tuple, EvalRun] = {}
    for run in runs:
        k = ((run.config or {}).get("candidate") or {}).get("k")
        seen.setdefault((run.provider, run.model, run.candidate_kind, k), run)
    return list(seen.values())


def _mix_note(engine: Engine, run: EvalRun) -> str | None:
    """How much general data the candidate's training set had mixed in (`ftm data mix`),
    so a mixed and an unmixed fine-tune read apart side by side."""
    from app.datasets.mix import mix_note

    if run.job_id is None:
        return None
    with read_session(engine) as session:
        job = session.get(Job, run.job_id)
        dataset = session.get(Dataset, job.dataset_id) if job and job.dataset_id else None
    return mix_note(dataset) if dataset is not None else None


def tasks(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return sorted(set(session.exec(select(EvalRun.task))))


def leaderboard(engine: Engine, task: str, dataset_id: int | None = None) -> list[Row]:
    """Candidates of ``task``, best quality first."""
    from app.costs.breakeven import break_even_requests
    from app.promotion.gates import find_base_general, find_baseline, training_cost

    rows = []
    for run in latest_runs(engine, task, dataset_id):
        summary = run.summary or {}
        task_s, general_s = summary.get("task") or {}, summary.get("general") or {}
        notes: list[str] = []
        general = general_s.get("score")
        delta = None
        if run.candidate_kind in ("fine_tuned", "checkpoint"):
            base_run = find_base_general(engine, run)
            if base_run is not None and general is not None:
                delta = general - base_run.summary["general"]["score"]
            elif general is not None:
                notes.append("base model's general ability not measured")
        cost, basis = per_request_cost(run)
        breakeven = None
        if run.candidate_kind in ("fine_tuned", "checkpoint"):
            baseline = find_baseline(engine, run)
            one_time, source = training_cost(engine, run)
            base_cost = per_request_cost(baseline)[0] if baseline else None
            if None not in (one_time, cost, base_cost):
                breakeven = break_even_requests(one_time, cost, base_cost)
                if breakeven is None:
                    notes.append("never pays back: not cheaper per request than few-shot")
            elif one_time is None:
                notes.append(source)
            else:
                notes.append("no per-request price for it or the baseline")
        if basis is not None:
            notes.append(basis)
        elif cost is None:
            notes.append("no per-token price in the catalog")
        mixed = _mix_note(engine, run)
        if mixed is not None:
            notes.append(mixed)
        if (run.config or {}).get("simulated"):
            notes.append("simulated on the sandbox: answers and costs are not real")
        if run.status == "stopped":
            notes.append(summary.get("stopped") or "stopped early")
        rows.append(
            Row(
                run_id=run.id,
                kind=run.candidate_kind,
                provider=run.provider,
                model=run.model,
                label=_label(run),
                quality=task_s.get("quality"),
                format=task_s.get("format"),
                general=general,
                forgetting_delta=delta,
                cost_per_1k_usd=cost * 1000 if cost is not None else None,
                breakeven_requests=breakeven,
                notes=tuple(notes),
                n=task_s.get("n", 0),
                job_id=run.job_id,
            )
        )
    rows.sort(key=lambda r: (r.quality is None, -(r.quality or 0.0), r.run_id))
    return rows


@dataclass(frozen=True)
class Flip:
    example_index: int
    expected: str | None
    output_a: str | None
    output_b: str | None
    score_a: float | None
    score_b: float | None

    @property
    def fixed(self) -> bool:
        """Wrong in A, right in B."""
        return (self.score_b or 0.0) > (self.score_a or 0.0)


def flips(engine: Engine, run_a: int, run_b: int) -> list[Flip]:
    """Task examples whose primary score differs between two runs on the same eval set."""
    with read_session(engine) as session:
        a, b = session.get(EvalRun, run_a), session.get(EvalRun, run_b)
    for rid, run in ((run_a, a), (run_b, b)):
        if run is None:
            raise LookupError(f"no eval run with id {rid}")
    primary = (a.summary or {}).get("task", {}).get("primary")
    if primary is None or primary != (b.summary or {}).get("task", {}).get("primary"):
        raise ValueError(
            f"runs {run_a} and {run_b} were not scored the same way; compare runs "
            "of the same eval set and scorers"
        )
    by_index = {r.example_index: r for r in results_of(engine, run_b, TASK_SUITE)}
    out = []
    for ra in results_of(engine, run_a, TASK_SUITE):
        rb = by_index.get(ra.example_index)
        if rb is None:
            continue
        sa, sb = (ra.scores or {}).get(primary), (rb.scores or {}).get(primary)
        if sa != sb:
            out.append(Flip(ra.example_index, ra.expected, ra.output, rb.output, sa, sb))
    return out
