"""A task's traffic policy: the canary share and shadowing the gateway applies
(app/gateway/routing.py reads it on every request, so a change here takes effect at the
next request, no restart). One module for the CLI (`ftm models canary|shadow`) and the
TUI's Models view alike; the counts shown beside it come from the request log.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import select

from db.engine import read_session, write_session
from db.models import Alias, GatewayRequest, ShadowAnswer, TrafficPolicy, utcnow

DEFAULT_ALIAS = "production"
DEFAULT_CANDIDATE_ALIAS = "staging"


class PolicyError(ValueError):
    """The policy asked for cannot be set; the message says why and what to do."""


@dataclass(frozen=True)
class PolicyView:
    """A task's policy with what it has done: what the CLI and the TUI print."""

    task: str
    alias: str
    canary_alias: str
    canary_percent: float
    shadow: bool
    shadow_alias: str
    canary_requests: int
    """Requests of this task answered by the canary (request log, route ``canary``)."""
    shadow_pairs: int
    """Shadow answers stored for this task."""
    updated_by: str | None

    @property
    def active(self) -> bool:
        return self.canary_percent > 0 or self.shadow

    def summary(self) -> str:
        """One line: ``canary 10% from staging (123 served); shadow to staging (45 pairs)``."""
        parts = []
        if self.canary_percent > 0:
            parts.append(
                f"canary {self.canary_percent:g}% from {self.canary_alias} "
                f"({self.canary_requests} served)"
            )
        if self.shadow:
            parts.append(f"shadow to {self.shadow_alias} ({self.shadow_pairs} pairs)")
        return "; ".join(parts) if parts else "no canary, no shadow"

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "alias": self.alias,
            "canary": {
                "alias": self.canary_alias,
                "percent": self.canary_percent,
                "requests_served": self.canary_requests,
            },
            "shadow": {"on": self.shadow, "alias": self.shadow_alias, "pairs": self.shadow_pairs},
        }


def set_canary(
    engine: Engine,
    task: str,
    percent: float,
    *,
    from_alias: str = DEFAULT_CANDIDATE_ALIAS,
    alias: str = DEFAULT_ALIAS,
    who: str | None = None,
) -> PolicyView:
    """Send ``percent`` (0..100) of ``alias``'s requests to ``from_alias``'s holder; 0 turns
    the canary off.

    Raises:
        PolicyError: unknown task, percent out of range, no holder of either alias.
    """
    if not 0 <= percent <= 100:
        raise PolicyError(f"--percent must be between 0 and 100, not {percent:g}")
    if percent > 0:
        _check_aliases(engine, task, alias, from_alias, "canary")
    else:
        _check_task(engine, task)
    with write_session(engine) as session:
        row = _row(session, task, alias)
        row.canary_percent = float(percent)
        row.canary_alias = from_alias
        row.updated_at, row.updated_by = utcnow(), who
        session.add(row)
    return view(engine, task, alias)


def set_shadow(
    engine: Engine,
    task: str,
    on: bool,
    *,
    to_alias: str = DEFAULT_CANDIDATE_ALIAS,
    alias: str = DEFAULT_ALIAS,
    who: str | None = None,
) -> PolicyView:
    """Also send every request of ``alias`` to ``to_alias``'s holder and store its answer
    (never returned), or stop.

    Raises:
        PolicyError: unknown task, no holder of either alias.
    """
    if on:
        _check_aliases(engine, task, alias, to_alias, "shadow")
    else:
        _check_task(engine, task)
    with write_session(engine) as session:
        row = _row(session, task, alias)
        row.shadow = on
        row.shadow_alias = to_alias
        row.updated_at, row.updated_by = utcnow(), who
        session.add(row)
    return view(engine, task, alias)


def view(engine: Engine, task: str, alias: str = DEFAULT_ALIAS) -> PolicyView:
    """The policy of ``task``/``alias`` (the defaults, off, when none was set) with its
    counts."""
    with read_session(engine) as session:
        row = session.get(TrafficPolicy, (task, alias))
        canary = session.exec(
            select(sa.func.count())
            .select_from(GatewayRequest)
            .where(GatewayRequest.task == task, GatewayRequest.route == "canary")
        ).one()
        pairs = session.exec(
            select(sa.func.count()).select_from(ShadowAnswer).where(ShadowAnswer.task == task)
        ).one()
    row = row or TrafficPolicy(task=task, alias=alias)
    return PolicyView(
        task=task,
        alias=alias,
        canary_alias=row.canary_alias,
        canary_percent=row.canary_percent,
        shadow=row.shadow,
        shadow_alias=row.shadow_alias,
        canary_requests=int(canary),
        shadow_pairs=int(pairs),
        updated_by=row.updated_by,
    )


def views(engine: Engine, task: str | None = None) -> list[PolicyView]:
    """Every policy set (of one task, or all), with counts."""
    with read_session(engine) as session:
        query = select(TrafficPolicy.task, TrafficPolicy.alias).order_by(TrafficPolicy.task)
        if task:
            query = query.where(TrafficPolicy.task == task)
        keys = list(session.exec(query))
    return [view(engine, t, a) for t, a in keys]


# --------------------------------------------------------------------------- internals


def _row(session, task: str, alias: str) -> TrafficPolicy:
    return session.get(TrafficPolicy, (task, alias)) or TrafficPolicy(task=task, alias=alias)


def _check_task(engine: Engine, task: str) -> set[str]:
    """The aliases ``task`` has; PolicyError naming the tasks that exist when none."""
    with read_session(engine) as session:
        held = set(session.exec(select(Alias.alias).where(Alias.task == task)))
        if not held:
            tasks = sorted(set(session.exec(select(Alias.task))))
            known = ", ".join(tasks) if tasks else "none yet"
            raise PolicyError(
                f"task {task!r} has no promoted model (tasks with one: {known}); "
                f"promote one first: ftm promote --task {task} --run ID"
            )
    return held


def _check_aliases(engine: Engine, task: str, alias: str, candidate: str, what: str) -> None:
    held = _check_task(engine, task)
    if alias not in held:
        raise PolicyError(
            f"task {task!r} has no {alias!r} alias to take traffic from; "
            f"promote one first: ftm promote --task {task} --alias {alias} --run ID"
        )
    if candidate == alias:
        raise PolicyError(f"the {what} alias must differ from {alias!r}")
    if candidate not in held:
        raise PolicyError(
            f"task {task!r} has no {candidate!r} candidate for the {what}; stage one first: "
            f"ftm promote --task {task} --alias {candidate} --run ID"
        )
