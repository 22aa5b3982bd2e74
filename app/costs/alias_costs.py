"""What each alias costs this calendar month, from the gateway log and the deployments.

Per ``TASK:ALIAS`` with traffic this month or a deployment running for it:

- requests: the requests it served (2xx, primary and canary: `app.costs.traffic`);
- tokens: the sum of the logged ``cost_usd`` of all its requests, shadow copies included
  (they are money spent on the alias's traffic; shown apart as ``shadow_usd``);
- hours: the running cost of the deployments that served it this month, read by
  app/deployments/billing.py over [first of the month, now]. A deployment that served
  several aliases is split between them by their requests to it this month; one that
  served none is charged to the alias it was deployed for, else reported as unattributed;
- total, and cost per 1,000 requests;
- break-even recomputed on actual traffic: the holder's training cost against the
  few-shot baseline's cost per request (the figures of the promotion gate and
  `ftm compare`), with the holder's cost per request taken from this month's actual
  total, which spreads the deployment hours over the requests actually served (the
  formula of app/costs/breakeven.py; only the inputs are measured). In months: at the
  requests/month measured for the alias (`measured_traffic`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import select

from app.costs.breakeven import break_even_requests
from app.costs.traffic import measured_traffic, served_requests
from app.deployments.billing import as_utc, running_cost_usd, running_hours
from db.engine import read_session
from db.models import Deployment, GatewayRequest


@dataclass(frozen=True)
class BreakEven:
    requests: float | None
    """Requests after which the holder has cost less than the few-shot baseline."""
    months: float | None
    """``requests`` at the measured requests/month."""
    one_time_usd: float | None
    per_request_usd: float | None
    """The holder's actual cost per request this month (tokens and hours)."""
    baseline_per_request_usd: float | None
    note: str
    """Where the figures come from, or why there is no break-even."""


@dataclass(frozen=True)
class AliasCost:
    task: str
    alias: str
    holder: str | None
    """``provider model`` holding the alias now; None when the alias has no holder."""
    requests: int
    token_usd: float
    shadow_usd: float
    """The part of ``token_usd`` spent on shadow copies."""
    deployment_usd: float
    deployments: list[dict] = field(default_factory=list)
    """id, provider, model, hours, share and usd of each deployment charged to it."""
    requests_per_month: float | None = None
    """Measured over the last 30 days (`measured_traffic`); None when nothing served."""
    break_even: BreakEven | None = None

    @property
    def name(self) -> str:
        return f"{self.task}:{self.alias}"

    @property
    def total_usd(self) -> float:
        return self.token_usd + self.deployment_usd

    @property
    def per_1k_usd(self) -> float | None:
        return None if not self.requests else self.total_usd / self.requests * 1000

    def to_dict(self) -> dict:
        return asdict(self) | {
            "name": self.name,
            "total_usd": self.total_usd,
            "per_1k_usd": self.per_1k_usd,
        }


@dataclass(frozen=True)
class AliasCosts:
    month: str
    """``YYYY-MM``"""
    start: datetime
    now: datetime
    aliases: list[AliasCost]
    unattributed: list[dict]
    """Deployments that ran this month serving no alias (same fields as
    `AliasCost.deployments`)."""

    def to_dict(self) -> dict:
        return {
            "month": self.month,
            "start": self.start.isoformat(),
            "now": self.now.isoformat(),
            "aliases": [a.to_dict() for a in self.aliases],
            "unattributed": self.unattributed,
        }


def month_start(now: datetime) -> datetime:
    return as_utc(now).astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def alias_costs(
    engine: Engine, *, task: str | None = None, now: datetime | None = None
) -> AliasCosts:
    """Every alias's cost this calendar month (of one task, or all), costliest first."""
    # In UTC: SQLite compares the stored UTC text, so the bounds must be UTC too.
    now = as_utc(now or datetime.now(UTC)).astimezone(UTC)
    start = month_start(now)
    usage = _usage(engine, start, now, task)
    charged, unattributed = _deployment_charges(engine, start, now)
    names = set(usage) | set(charged)
    if task is not None:
        names = {n for n in names if n[0] == task}
    rows = []
    for name in names:
        requests, token_usd, shadow_usd = usage.get(name, (0, 0.0, 0.0))
        deployments = charged.get(name, [])
        row = AliasCost(
            task=name[0],
            alias=name[1],
            holder=_holder(engine, *name),
            requests=requests,
            token_usd=token_usd,
            shadow_usd=shadow_usd,
            deployment_usd=sum(d["usd"] for d in deployments),
            deployments=deployments,
        )
        traffic = measured_traffic(engine, task=name[0], alias=name[1], now=now)
        rpm = traffic.requests_per_month if traffic else None
        rows.append(replace(row, requests_per_month=rpm, break_even=_break_even(engine, row, rpm)))
    rows.sort(key=lambda r: (-r.total_usd, r.name))
    return AliasCosts(
        month=start.strftime("%Y-%m"), start=start, now=now, aliases=rows, unattributed=unattributed
    )


def _usage(
    engine: Engine, start: datetime, now: datetime, task: str | None
) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(task, alias) -> (served requests, token cost of all its rows, of its shadow rows)."""
    served = sa.and_(*served_requests())
    shadow = GatewayRequest.route == "shadow"
    query = (
        select(
            GatewayRequest.task,
            GatewayRequest.alias,
            sa.func.sum(sa.case((served, 1), else_=0)),
            sa.func.coalesce(sa.func.sum(GatewayRequest.cost_usd), 0.0),
            sa.func.coalesce(sa.func.sum(sa.case((shadow, GatewayRequest.cost_usd))), 0.0),
        )
        .where(
            GatewayRequest.created_at >= start,
            GatewayRequest.created_at <= now,
            GatewayRequest.task.is_not(None),
            GatewayRequest.alias.is_not(None),
        )
        .group_by(GatewayRequest.task, GatewayRequest.alias)
    )
    if task is not None:
        query = query.where(GatewayRequest.task == task)
    with read_session(engine) as session:
        return {
            (t, a): (int(n or 0), float(usd), float(shadow_usd))
            for t, a, n, usd, shadow_usd in session.exec(query)
        }


def _deployment_charges(
    engine: Engine, start: datetime, now: datetime
) -> tuple[dict[tuple[str, str], list[dict]], list[dict]]:
    """Each running cost this month, charged to the aliases the deployment served."""
    with read_session(engine) as session:
        deployments = session.exec(
            select(Deployment).where(
                Deployment.usd_per_hour.is_not(None),
                Deployment.started_at.is_not(None),
                Deployment.started_at <= now,
                sa.or_(Deployment.stopped_at.is_(None), Deployment.stopped_at >= start),
            )
        ).all()
        served = session.exec(
            select(
                GatewayRequest.deployment_id,
                GatewayRequest.task,
                GatewayRequest.alias,
                sa.func.count(),
            )
            .where(
                GatewayRequest.deployment_id.is_not(None),
                GatewayRequest.task.is_not(None),
                GatewayRequest.alias.is_not(None),
                GatewayRequest.created_at >= start,
                GatewayRequest.created_at <= now,
            )
            .group_by(GatewayRequest.deployment_id, GatewayRequest.task, GatewayRequest.alias)
        ).all()
    shares: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for deployment_id, t, a, n in served:
        shares[deployment_id][(t, a)] = n
    charged: dict[tuple[str, str], list[dict]] = defaultdict(list)
    unattributed = []
    for row in deployments:
        usd = running_cost_usd(row, start=start, end=now, now=now) or 0.0
        facts = {
            "id": row.id,
            "provider": row.provider,
            "model": row.model,
            "hours": running_hours(row, start=start, end=now, now=now),
            "usd_per_hour": row.usd_per_hour,
        }
        counts = shares.get(row.id) or (
            {(row.task, row.alias): 1} if row.task and row.alias else {}
        )
        if not counts:
            unattributed.append(facts | {"share": 1.0, "usd": usd})
            continue
        total = sum(counts.values())
        for name, n in counts.items():
            charged[name].append(facts | {"share": n / total, "usd": usd * n / total})
    return dict(charged), unattributed


def _holder(engine: Engine, task: str, alias: str) -> str | None:
    from app.promotion.aliases import current

    found = current(engine, task, alias)
    return None if found is None else f"{found.promotion.provider} {found.promotion.model}"


def _break_even(engine: Engine, row: AliasCost, requests_per_month: float | None) -> BreakEven:
    """The holder's break-even against the few-shot baseline, on this month's actual cost
    per request."""
    from app.evaluation.pricing import per_request_cost
    from app.promotion.aliases import current
    from app.promotion.gates import find_baseline, training_cost
    from db.models import EvalRun

    def none(note: str, **known) -> BreakEven:
        return BreakEven(
            **{
                "requests": None,
                "months": None,
                "one_time_usd": None,
                "per_request_usd": None,
                "baseline_per_request_usd": None,
                **known,
                "note": note,
            }
        )

    if not row.requests:
        return none("no requests served this month")
    per_request = row.total_usd / row.requests
    holder = current(engine, row.task, row.alias)
    if holder is None or holder.promotion.eval_run_id is None:
        return none(
            f"{row.name} has no promoted holder with an eval run", per_request_usd=per_request
        )
    with read_session(engine) as session:
        run = session.get(EvalRun, holder.promotion.eval_run_id)
    if run is None:
        return none("the holder's eval run is gone", per_request_usd=per_request)
    one_time, source = training_cost(engine, run)
    baseline = find_baseline(engine, run)
    base_cost = per_request_cost(baseline)[0] if baseline is not None else None
    known = {
        "one_time_usd": one_time,
        "per_request_usd": per_request,
        "baseline_per_request_usd": base_cost,
    }
    if one_time is None:
        return none(source, **known)
    if base_cost is None:
        return none(
            f"no few-shot baseline price on task {row.task}'s eval set "
            f"(run `ftm eval --task {row.task} --few-shot K`)",
            **known,
        )
    requests = break_even_requests(one_time, per_request, base_cost)
    if requests is None:
        return none(
            "never pays back: its actual cost per request is not below the few-shot baseline's",
            **known,
        )
    months = None if not requests_per_month else requests / requests_per_month
    return BreakEven(
        requests=requests,
        months=months,
        note=f"{source}; baseline: eval run {baseline.id}; this month's actual cost per request",
        **known,
    )
