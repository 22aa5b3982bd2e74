"""Idle protection: a deployment billed by the hour that serves no traffic is money spent
on nothing (the complaint users of dedicated endpoints make most).

`enforce_idle_stops` stops every running one whose idle limit (``ftm deploy
--idle-stop``) has passed, recording the stop with reason ``idle``; the gateway calls it
every 60 s and `ftm watch` each tick. `idle_warnings` words the ones with no limit that
have had no traffic for ``[deployments] idle_warning`` (an hour by default), for `ftm
watch`, the TUI's Deployments view and its status line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from app.costs.money import usd
from app.deployments.durations import format_duration
from app.deployments.service import (
    BILLED_KINDS,
    DeploymentError,
    ProviderFactory,
    idle_seconds,
    stop,
    utc_now,
)
from db.engine import read_session
from db.models import Deployment

DEFAULT_WARNING_S = 3600


@dataclass(frozen=True)
class IdleStop:
    """One deployment the idle limit stopped (or tried to: ``error`` says why not)."""

    deployment_id: int
    model: str
    idle_s: float
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"deployment {self.deployment_id} ({self.model}) idle: {self.error}"
        return (
            f"stopped deployment {self.deployment_id} ({self.model}): no request for "
            f"{format_duration(self.idle_s)}, past its idle limit"
        )


def _running_billed(engine: Engine) -> list[Deployment]:
    with read_session(engine) as session:
        query = select(Deployment).where(
            Deployment.state == "running",
            Deployment.kind.in_(BILLED_KINDS),  # type: ignore[attr-defined]
        )
        return list(session.exec(query.order_by(Deployment.id)))  # type: ignore[arg-type]


def enforce_idle_stops(
    engine: Engine, *, now: datetime | None = None, make: ProviderFactory | None = None
) -> list[IdleStop]:
    """Stop (reason ``idle``) every running dedicated or local deployment whose last
    request, or start, is at least its ``idle_stop_s`` ago. Never raises for one
    deployment: a provider that refuses is reported in its `IdleStop` and tried again on
    the next call."""
    now = now or utc_now()
    done = []
    for row in _running_billed(engine):
        idle = idle_seconds(row, now)
        if row.idle_stop_s is None or idle is None or idle < row.idle_stop_s:
            continue
        assert row.id is not None
        try:
            stop(engine, row.id, reason="idle", make=make, now=now)
        except DeploymentError as exc:
            done.append(IdleStop(row.id, row.model, idle, error=str(exc)))
        else:
            done.append(IdleStop(row.id, row.model, idle))
    return done


def warning_threshold_s() -> int:
    """``[deployments] idle_warning`` from the settings, in seconds."""
    from app.settings import get_settings

    return get_settings().deployments.idle_warning_s


def idle_warnings(
    engine: Engine, now: datetime | None = None, *, threshold_s: int | None = None
) -> list[str]:
    """One line per running deployment billed by the hour with no idle limit and no
    traffic for ``threshold_s`` (default: the setting), saying what it costs and what to
    do."""
    now = now or utc_now()
    threshold = warning_threshold_s() if threshold_s is None else threshold_s
    lines = []
    for row in _running_billed(engine):
        idle = idle_seconds(row, now)
        if row.idle_stop_s is not None or idle is None or idle < threshold:
            continue
        rate = f" at {usd(row.usd_per_hour)}/hour" if row.usd_per_hour is not None else ""
        lines.append(
            f"deployment {row.id} ({row.model} on {row.provider}) has served no request for "
            f"{format_duration(idle)} and bills{rate} while running: stop it (ftm "
            f"deployments stop {row.id}) or deploy it with an idle limit (--idle-stop 30m)"
        )
    return lines
