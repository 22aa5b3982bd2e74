"""How much traffic the money figures assume: measured from the gateway log, or the user's.

`ftm serve` logs every request (db/models.GatewayRequest). When the log holds traffic for
the task in question, the estimate uses it: requests per month, and the mean prompt and
reply of a request. Without any, the user's figure (``--requests-per-month``, the Costs
tab's field) is assumed. `traffic_for` is the one place that decides; `ftm estimate`, the
Costs tab and the per-alias costs all ask it.

What is counted: requests that succeeded (2xx) and were answered to a client, i.e. the
primary and canary routes. Shadow copies are not requests of the application (their cost
is counted where money is added up, app/costs/alias_costs.py), and failed requests are
not traffic the model served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import select

from app.lifecycle import DAYS_PER_MONTH
from db.engine import read_session
from db.models import EvalRun, GatewayRequest

DEFAULT_REQUESTS_PER_MONTH = 10_000.0
"""Assumed when the user gives no figure and the gateway has measured none."""
DEFAULT_WINDOW_DAYS = 30
MIN_WINDOW_DAYS = 1.0
"""The shortest span traffic is scaled from (see `measured_traffic`)."""
SERVED_ROUTES = ("primary", "canary")


@dataclass(frozen=True)
class Traffic:
    """The traffic a cost figure is computed for, and where it comes from."""

    source: str
    """``measured`` (the gateway log) or ``assumed`` (the user's figure or the default)."""
    requests_per_month: float
    window_days: float | None
    """The span the measurement was scaled from; None when assumed."""
    prompt_tokens: float | None = None
    """Mean prompt tokens of a measured request; None when assumed or not logged."""
    completion_tokens: float | None = None
    """Mean reply tokens of a measured request; None when assumed or not logged."""
    requests: int = 0
    """Requests counted in the window (0 when assumed)."""
    scope: str = ""
    """What was measured (``task tickets``), or why nothing was."""
    given: bool = False
    """Assumed because the user gave the figure (a what-if), not for want of traffic."""

    @property
    def measured(self) -> bool:
        return self.source == "measured"

    def describe(self) -> str:
        """One sentence, the same in `ftm estimate` and the Costs tab."""
        rpm = f"{self.requests_per_month:,.0f} requests/month"
        if self.measured:
            shape = ""
            if self.prompt_tokens is not None and self.completion_tokens is not None:
                shape = (
                    f", ~{self.prompt_tokens:,.0f} prompt / "
                    f"{self.completion_tokens:,.0f} reply tokens"
                )
            return (
                f"Traffic measured from the gateway log over the last "
                f"{_days(self.window_days)} ({self.scope}, {self.requests:,} requests): "
                f"{rpm}{shape}."
            )
        if self.given:
            return f"Traffic assumed: {rpm}, the figure given (a what-if)."
        why = f" ({self.scope})" if self.scope else ""
        return (
            f"Traffic assumed: {rpm}, the default{why}; serve the task through "
            "`ftm serve` to measure it."
        )

    def to_dict(self) -> dict:
        return asdict(self)


def assumed(requests_per_month: float, *, given: bool = True, scope: str = "") -> Traffic:
    """The user's figure (``given``), or the default when there is neither a figure nor
    measured traffic."""
    return Traffic(
        source="assumed",
        requests_per_month=float(requests_per_month),
        window_days=None,
        scope=scope,
        given=given,
    )


def served_requests(
    *,
    task: str | Sequence[str] | None = None,
    alias: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> list:
    """The WHERE clauses of "requests the application was answered" (2xx, primary or
    canary), narrowed to a task (or several), alias, provider and model."""
    clauses = [
        GatewayRequest.route.in_(SERVED_ROUTES),
        GatewayRequest.status_code >= 200,
        GatewayRequest.status_code < 300,
    ]
    if isinstance(task, str):
        clauses.append(GatewayRequest.task == task)
    elif task is not None:
        clauses.append(GatewayRequest.task.in_(list(task)))
    for column, value in (
        (GatewayRequest.alias, alias),
        (GatewayRequest.provider, provider),
        (GatewayRequest.model, model),
    ):
        if value is not None:
            clauses.append(column == value)
    return clauses


def measured_traffic(
    engine: Engine,
    *,
    task: str | Sequence[str] | None = None,
    alias: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    window_days: float = DEFAULT_WINDOW_DAYS,
    now: datetime | None = None,
) -> Traffic | None:
    """Traffic the gateway served in the last ``window_days`` (None when it served none).

    Scaling rule: requests/month = requests counted / days covered x days in a month
    (365.25 / 12), where the days covered run from the first counted request to ``now``,
    capped at ``window_days`` and never under `MIN_WINDOW_DAYS` (one day): an hour of
    traffic is scaled as a day's, not multiplied by 730. Token sizes are the means over
    the counted requests that logged them.
    """
    now = _utc(now or datetime.now(UTC))
    since = now - timedelta(days=window_days)
    where = served_requests(task=task, alias=alias, provider=provider, model=model)
    query = select(
        sa.func.count(),
        sa.func.min(GatewayRequest.created_at),
        sa.func.avg(GatewayRequest.prompt_tokens),
        sa.func.avg(GatewayRequest.completion_tokens),
    ).where(GatewayRequest.created_at >= since, GatewayRequest.created_at <= now, *where)
    with read_session(engine) as session:
        count, first, prompt, completion = session.exec(query).one()
    if not count:
        return None
    covered = (now - _utc(first)).total_seconds() / 86_400
    days = min(float(window_days), max(MIN_WINDOW_DAYS, covered))
    return Traffic(
        source="measured",
        requests_per_month=count / days * DAYS_PER_MONTH,
        window_days=days,
        prompt_tokens=None if prompt is None else float(prompt),
        completion_tokens=None if completion is None else float(completion),
        requests=int(count),
        scope=_scope(task, alias, provider, model),
    )


def traffic_for(
    engine: Engine,
    *,
    given: float | None,
    task: str | Sequence[str] | None,
    alias: str | None = None,
    window_days: float = DEFAULT_WINDOW_DAYS,
    now: datetime | None = None,
    default: float = DEFAULT_REQUESTS_PER_MONTH,
) -> Traffic:
    """The traffic to price at: the figure the user ``given`` wins (a what-if); without
    one, the traffic measured for ``task`` (a name, several, or None for "no task known":
    nothing is measured then), else ``default``, assumed."""
    if given is not None:
        return assumed(given)
    if task is None or (not isinstance(task, str) and not task):
        return assumed(default, given=False, scope="no task was evaluated on this dataset")
    found = measured_traffic(engine, task=task, alias=alias, window_days=window_days, now=now)
    if found is not None:
        return found
    return assumed(
        default,
        given=False,
        scope=f"no gateway traffic for {_scope(task, alias, None, None)} in the last "
        f"{_days(window_days)}",
    )


def tasks_of_dataset(engine: Engine, dataset_id: int) -> list[str]:
    """The tasks evaluated on a dataset: whose traffic an estimate for it is measured on."""
    with read_session(engine) as session:
        found = session.exec(
            select(EvalRun.task).where(EvalRun.dataset_id == dataset_id).distinct()
        ).all()
    return sorted(found)


def _scope(
    task: str | Sequence[str] | None, alias: str | None, provider: str | None, model: str | None
) -> str:
    if task is None:
        parts = ["all tasks"]
    elif isinstance(task, str):
        parts = [f"task {task}"]
    else:
        parts = [("task " if len(task) == 1 else "tasks ") + ", ".join(task)]
    if alias:
        parts = [f"{task}:{alias}"] if isinstance(task, str) else [*parts, f"alias {alias}"]
    parts += [f"{k} {v}" for k, v in (("provider", provider), ("model", model)) if v]
    return ", ".join(parts)


def _days(days: float | None) -> str:
    if days is None:
        return "-"
    return "1 day" if round(days, 1) == 1 else f"{days:.3g} days"


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; ftm stores UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
