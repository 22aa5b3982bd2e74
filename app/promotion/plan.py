"""The migration plan: every alias whose holder stops serving, or whose provider stops
accepting re-training, before a horizon — with the deadline, the cheapest replacement
that passes the gates so far, and what it would cost.

One truth for `ftm models plan` and the TUI's plan screen (both only render it). Every
date comes from the lifecycle service (`app.lifecycle`, which asks each provider's
`lifecycle()`); the candidates and their measured cost per request from the task's
leaderboard (`app.evaluation.compare`, priced by app.costs); the gates from
`app.promotion.gates`. Nothing here knows a provider by name.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from sqlalchemy import Engine

from app import lifecycle
from app.costs.catalog import load_catalog
from app.costs.money import usd
from app.evaluation.compare import Row, leaderboard
from app.evaluation.pricing import hosting_per_hour
from app.promotion.aliases import holders
from app.promotion.gates import check_gates
from db.engine import read_session
from db.models import EvalRun, Promotion

DEFAULT_HORIZON_MONTHS = 12.0
DEFAULT_REQUESTS_PER_MONTH = 10_000.0
"""The traffic a replacement's cost is projected at (the same default as `ftm estimate`)."""
STOPS_SERVING = "stops serving"
STOPS_RETRAINING = "stops accepting re-training"
TRAINED_KINDS = ("fine_tuned", "checkpoint")
"""Candidates that can replace a holder: trained models (baselines are not promoted)."""


@dataclass(frozen=True)
class Deadline:
    """One end the holder meets inside the horizon."""

    day: date
    what: str
    """`STOPS_SERVING` or `STOPS_RETRAINING`."""
    message: str
    """The lifecycle service's sentence for it."""


@dataclass(frozen=True)
class Replacement:
    run_id: int
    provider: str
    model: str
    label: str
    quality: float | None
    cost_per_1k_usd: float | None
    projected_usd: float | None
    """Per-request cost x traffic x horizon months, plus what keeps it answering by the
    hour over the horizon; None when it has no price."""
    hosting_per_hour: float | None = None
    """What keeps it answering per hour, used or not: a deployment's fee (a dedicated
    endpoint), or the serving GPUs of a self-hosted model; None: nothing by the hour."""
    notes: tuple[str, ...] = ()
    """The leaderboard's notes on it (how its cost was modelled, simulated...)."""


@dataclass(frozen=True)
class PlanEntry:
    task: str
    alias: str
    provider: str
    model: str
    base_model: str | None
    deadlines: tuple[Deadline, ...]
    """Earliest first; the first is the one to act by."""
    replacement: Replacement | None
    why_none: str | None = None
    """When there is no replacement: what to do instead."""
    rejected: tuple[str, ...] = ()
    """Candidates looked at and why each was not chosen."""

    @property
    def deadline(self) -> Deadline:
        return self.deadlines[0]


@dataclass(frozen=True)
class MigrationPlan:
    today: date
    horizon_months: float
    horizon_end: date
    requests_per_month: float
    entries: tuple[PlanEntry, ...]

    def to_dict(self) -> dict:
        return {
            "today": self.today.isoformat(),
            "horizon_months": self.horizon_months,
            "horizon_end": self.horizon_end.isoformat(),
            "requests_per_month": self.requests_per_month,
            "entries": [
                asdict(e)
                | {
                    "deadline": e.deadline.day.isoformat(),
                    "days_left": (e.deadline.day - self.today).days,
                    "deadlines": [
                        {"day": d.day.isoformat(), "what": d.what, "message": d.message}
                        for d in e.deadlines
                    ],
                }
                for e in self.entries
            ],
        }


def horizon_end(today: date, months: float) -> date:
    return today + timedelta(days=round(months * lifecycle.DAYS_PER_MONTH))


def deadlines_of(
    provider: str, model: str, base_model: str | None, today: date, until: date
) -> tuple[Deadline, ...]:
    """The ends a model on ``provider`` meets on or before ``until``, earliest first: the
    last day its provider accepts jobs (re-training it), and the day it stops serving."""
    found = []
    cutoff = lifecycle.creation_cutoff(provider, today)
    if cutoff is not None and cutoff.last_day <= until:
        found.append(Deadline(cutoff.last_day, STOPS_RETRAINING, cutoff.message))
    retires = lifecycle.retirement(provider, model, base_model, today)
    if retires is not None and retires.retires <= until:
        found.append(Deadline(retires.retires, STOPS_SERVING, retires.message))
    return tuple(sorted(found, key=lambda d: d.day))


def migration_plan(
    engine: Engine,
    *,
    horizon_months: float = DEFAULT_HORIZON_MONTHS,
    requests_per_month: float = DEFAULT_REQUESTS_PER_MONTH,
    today: date | None = None,
) -> MigrationPlan:
    """Every alias at risk before ``horizon_months`` from ``today``, soonest first."""
    if horizon_months <= 0 or requests_per_month <= 0:
        raise ValueError("the horizon and the requests per month must be positive")
    today = today or lifecycle.today()
    until = horizon_end(today, horizon_months)
    entries = []
    for holder in holders(engine):
        held = holder.promotion
        ends = deadlines_of(held.provider, held.model, held.base_model, today, until)
        if not ends:
            continue
        replacement, rejected = _cheapest_replacement(
            engine, holder.alias.task, held, today, until, horizon_months, requests_per_month
        )
        entries.append(
            PlanEntry(
                task=holder.alias.task,
                alias=holder.alias.alias,
                provider=held.provider,
                model=held.model,
                base_model=held.base_model,
                deadlines=ends,
                replacement=replacement,
                why_none=None if replacement else _why_none(holder.alias.task, rejected),
                rejected=tuple(rejected),
            )
        )
    entries.sort(key=lambda e: (e.deadline.day, e.task, e.alias))
    return MigrationPlan(today, horizon_months, until, requests_per_month, tuple(entries))


def _eval_set_of(engine: Engine, held: Promotion) -> int | None:
    """The dataset the holder was judged on: replacements are compared on the same one."""
    if held.eval_run_id is None:
        return None
    with read_session(engine) as session:
        run = session.get(EvalRun, held.eval_run_id)
    return run.dataset_id if run is not None else None


def _cheapest_replacement(
    engine: Engine,
    task: str,
    held: Promotion,
    today: date,
    until: date,
    horizon_months: float,
    requests_per_month: float,
) -> tuple[Replacement | None, list[str]]:
    passing: list[Replacement] = []
    rejected: list[str] = []
    for row in leaderboard(engine, task, _eval_set_of(engine, held)):
        if row.kind not in TRAINED_KINDS or (row.provider, row.model) == (
            held.provider,
            held.model,
        ):
            continue
        ends = deadlines_of(row.provider, row.model, _base_of(engine, row), today, until)
        if ends:
            rejected.append(f"{row.label} [{row.provider}]: {ends[0].what} {ends[0].day}")
            continue
        report = check_gates(engine, row.run_id)
        if not report.passed:
            failed = ", ".join(g.name for g in report.results if not g.passed)
            rejected.append(f"{row.label} [{row.provider}]: fails the {failed} gate")
            continue
        hourly = hosting_per_hour(row.provider, _base_of(engine, row))
        passing.append(_replacement(row, horizon_months, requests_per_month, hourly))
    # Cheapest first; an unpriced candidate only when nothing priced passes.
    passing.sort(key=lambda r: (r.projected_usd is None, r.projected_usd or 0.0, r.run_id))
    return (passing[0] if passing else None), rejected


def _base_of(engine: Engine, row: Row) -> str | None:
    with read_session(engine) as session:
        run = session.get(EvalRun, row.run_id)
    return ((run.config or {}).get("candidate") or {}).get("base_model") if run else None


def _replacement(
    row: Row, horizon_months: float, requests_per_month: float, hourly: float | None
) -> Replacement:
    projected = None
    if row.cost_per_1k_usd is not None:
        projected = row.cost_per_1k_usd / 1000 * requests_per_month * horizon_months
        if hourly:  # billed while it runs, used or not: often most of the bill
            # (For a self-hosted model this counts its requests' GPU time twice, once in
            # the per-request cost; that share is small beside an always-on GPU's hours.)
            projected += hourly * load_catalog().default("hours_per_month") * horizon_months
    return Replacement(
        run_id=row.run_id,
        provider=row.provider,
        model=row.model,
        label=row.label,
        quality=row.quality,
        cost_per_1k_usd=row.cost_per_1k_usd,
        projected_usd=projected,
        hosting_per_hour=hourly,
        notes=row.notes,
    )


def _why_none(task: str, rejected: list[str]) -> str:
    looked = f" ({len(rejected)} candidate(s) ruled out)" if rejected else ""
    return (
        f"no evaluated model passes the gates and serves past the horizon{looked}: train "
        f"one elsewhere with `ftm migrate --task {task} --to PROVIDER --model BASE`"
    )


# -- text (the CLI and the TUI's detail pane) ---------------------------------------------


def headline(plan: MigrationPlan) -> str:
    return (
        f"Migration plan on {plan.today.isoformat()}: horizon {plan.horizon_months:g} months "
        f"(to {plan.horizon_end.isoformat()}), {plan.requests_per_month:,.0f} requests/month"
    )


def replacement_text(entry: PlanEntry, plan: MigrationPlan) -> str:
    r = entry.replacement
    if r is None:
        return entry.why_none or "none"
    quality = "-" if r.quality is None else f"{r.quality:.3f}"
    cost = (
        "no price recorded"
        if r.projected_usd is None
        else f"{usd(r.cost_per_1k_usd)}/1k requests"
        + (f" + hosting {usd(r.hosting_per_hour)}/h" if r.hosting_per_hour else "")
        + f", about {usd(r.projected_usd)} over {plan.horizon_months:g} months"
    )
    return f"{r.model} [{r.provider}] (eval run {r.run_id}, quality {quality}): {cost}"


def entry_lines(entry: PlanEntry, plan: MigrationPlan, width: int = 80) -> list[str]:
    """One alias of the plan as lines of at most ``width`` columns (a model id or path
    longer than a line is kept whole, on a line of its own, so it can be copied)."""

    def wrapped(label: str, text: str) -> list[str]:
        return textwrap.wrap(
            text,
            width,
            initial_indent=f"  {label:<9} ",
            subsequent_indent=" " * 12,
            break_on_hyphens=False,
            break_long_words=False,  # a path or model id stays whole, to copy
        )

    lines = textwrap.wrap(
        f"{entry.task}/{entry.alias}: {entry.model} [{entry.provider}]",
        width,
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    for i, d in enumerate(entry.deadlines):
        days = (d.day - plan.today).days
        lines += wrapped(
            "deadline" if i == 0 else "then", f"{d.day.isoformat()} ({days} days): {d.what}"
        )
    lines += wrapped("replace", replacement_text(entry, plan))
    for reason in entry.rejected:
        lines += wrapped("ruled out", reason)
    if entry.replacement is not None:
        lines += wrapped(
            "do",
            f"ftm promote --task {entry.task} --alias {entry.alias} "
            f"--run {entry.replacement.run_id}",
        )
    return lines


def plan_lines(plan: MigrationPlan, width: int = 80) -> list[str]:
    lines = textwrap.wrap(headline(plan), width)
    if not plan.entries:
        return lines + ["No alias stops serving or re-training before the horizon."]
    for entry in plan.entries:
        lines += [""] + entry_lines(entry, plan, width)
    return lines
