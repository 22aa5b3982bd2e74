"""What a deployment's running time costs: the one reading of a `Deployment` row's hours
and dollars, used by ``ftm deployments``, the TUI and the per-alias cost figures.

A row covers one run: from ``started_at`` to ``stopped_at`` (or now, while it runs).
Starting a stopped deployment again makes a new row, so each row's interval is the whole
of its billed time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from db.models import Deployment


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; ftm stores UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def running_hours(
    row: Deployment,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> float:
    """Hours the deployment ran within [start, end] (None: unbounded on that side; a
    deployment still running counts up to ``now``)."""
    if row.started_at is None:
        return 0.0
    now = as_utc(now) if now is not None else datetime.now(UTC)
    ran_from = as_utc(row.started_at)
    ran_to = as_utc(row.stopped_at) if row.stopped_at is not None else now
    if start is not None:
        ran_from = max(ran_from, as_utc(start))
    if end is not None:
        ran_to = min(ran_to, as_utc(end))
    return max(0.0, (ran_to - ran_from).total_seconds() / 3600)


def running_cost_usd(
    row: Deployment,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> float | None:
    """Its hourly price times the hours it ran within [start, end]; None when it has no
    hourly price (serverless: billed per token, see the request log)."""
    if row.usd_per_hour is None:
        return None
    return row.usd_per_hour * running_hours(row, start=start, end=end, now=now)
