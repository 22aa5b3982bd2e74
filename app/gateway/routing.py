"""Which model answers a gateway request: ``model="TASK:ALIAS"`` (or ``"TASK"``, its
``production`` alias) resolved to the alias's current holder, per request.

A promotion or rollback committed before a request starts is what that request sees,
with no restart. `plan` reads on every call: three small indexed reads on one
connection (the task's aliases with their promotions, the traffic policy by primary key,
the running deployments of its holders). The gateway, whose added-latency budget is
~2 ms, plans through `app.gateway.route_cache.RouteCache`, which keeps those reads until
the database changes (and so never serves a holder a commit has replaced). The provider
contract (`deployment_kind`) is asked of provider objects built once and kept.

The traffic policy (canary share, shadowing; app/gateway/policy.py writes it) is applied
here: a draw below ``canary_percent / 100`` is answered by the canary alias's holder.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from app.deployments.service import contract_deployment
from db.models import Alias, Promotion, TrafficPolicy
from db.models import Deployment as DeploymentRow
from providers import types

DEFAULT_ALIAS = "production"
SEPARATOR = ":"


class UnknownModel(LookupError):
    """The requested model names no task or alias ftm serves; ``message`` says what
    exists (the gateway answers 404 ``model_not_found`` with it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """One alias holder, as the gateway calls it."""

    task: str
    alias: str
    """The alias whose holder this is (production, staging...)."""
    provider: str
    model: str
    model_kind: str
    base_model: str | None
    promotion_id: int
    deployment_id: int | None
    """The running `db.models.Deployment` row it answers from; None when none runs."""
    deployment: types.Deployment | None
    """The same row as the provider contract's type (what `Provider.upstream` takes)."""
    needs_deployment: bool
    """The provider serves this model only from a deployment
    (`Provider.deployment_kind` is not ``serverless``): with no running one, it cannot
    answer."""


@dataclass(frozen=True)
class RoutePlan:
    task: str
    alias: str
    """The alias the client asked for (``production`` when it named only the task)."""
    answer: Target
    """Who answers the client."""
    route: str
    """``primary`` (the alias's own holder) or ``canary`` (the canary alias's holder)."""
    shadow: Target | None
    """Also sent the request, its answer stored and never returned; None: no shadowing."""


# Built once: constructing a SQLAlchemy expression per request costs more than running it.
_HOLDERS = (
    sa.select(
        Alias.alias,
        Promotion.id,
        Promotion.provider,
        Promotion.model,
        Promotion.model_kind,
        Promotion.base_model,
    )
    .join(Promotion, Promotion.id == Alias.promotion_id)
    .where(Alias.task == sa.bindparam("task"))
)
_POLICY = sa.select(TrafficPolicy).where(
    TrafficPolicy.task == sa.bindparam("task"), TrafficPolicy.alias == sa.bindparam("alias")
)
_RUNNING = (
    sa.select(DeploymentRow)
    .where(
        DeploymentRow.state == "running",
        DeploymentRow.model.in_(sa.bindparam("models", expanding=True)),
    )
    .order_by(DeploymentRow.id.desc())
)


def parse(requested_model: str) -> tuple[str, str]:
    """``TASK:ALIAS`` -> (TASK, ALIAS); ``TASK`` -> (TASK, production)."""
    task, sep, alias = requested_model.strip().partition(SEPARATOR)
    return task.strip(), (alias.strip() if sep else DEFAULT_ALIAS)


@dataclass(frozen=True)
class Routes:
    """What the database says about one ``TASK:ALIAS`` (the part of a plan that is read,
    not drawn): its task's holders, the alias's traffic policy, the holders' running
    deployments. `RouteCache` keeps these between commits."""

    task: str
    alias: str
    holders: dict[str, sa.Row]
    policy: sa.Row | None
    running: dict[tuple[str, str], sa.Row]


def plan(engine: Engine, requested_model: str, draw: float | None = None) -> RoutePlan:
    """Who answers ``requested_model`` now, and who shadows it.

    ``draw`` in [0, 1) decides the canary (injected by tests; random otherwise).

    Raises:
        UnknownModel: no such task, or the task has no such alias.
    """
    task, alias = parse(requested_model)
    return decide(read_routes(engine, task, alias), draw)


def read_routes(engine: Engine, task: str, alias: str) -> Routes:
    """The three indexed reads a plan needs, on one connection.

    Raises:
        UnknownModel: no such task, or the task has no such alias.
    """
    with engine.connect() as conn:
        holders = {row.alias: row for row in conn.execute(_HOLDERS, {"task": task})}
        if alias not in holders:
            raise UnknownModel(_unknown_message(conn, task, alias, holders))
        policy = conn.execute(_POLICY, {"task": task, "alias": alias}).first()
        running = _running_deployments(conn, list(holders.values()))
    return Routes(task, alias, holders, policy, running)


def decide(routes: Routes, draw: float | None = None) -> RoutePlan:
    """The plan for one request from what was read: the canary draw, the shadow."""
    task, alias, holders, policy = routes.task, routes.alias, routes.holders, routes.policy
    answer_alias, route = alias, "primary"
    shadow_alias: str | None = None
    if policy is not None:
        canary = policy.canary_alias
        if policy.canary_percent > 0 and canary in holders and canary != alias:
            if draw is None:
                draw = random.random()
            if draw < policy.canary_percent / 100:
                answer_alias, route = canary, "canary"
        if policy.shadow and policy.shadow_alias in holders:
            shadow_alias = policy.shadow_alias
    answer_row = holders[answer_alias]
    shadow_row = holders[shadow_alias] if shadow_alias else None
    if shadow_row is not None and (shadow_row.provider, shadow_row.model) == (
        answer_row.provider,
        answer_row.model,
    ):
        shadow_row = None  # the same model twice would only double the cost
    answer = _target(task, answer_alias, answer_row, routes.running)
    shadow = (
        _target(task, shadow_alias, shadow_row, routes.running)
        if shadow_row is not None and shadow_alias
        else None
    )
    return RoutePlan(task=task, alias=alias, answer=answer, route=route, shadow=shadow)


def served_models(engine: Engine) -> list[str]:
    """Every model name the gateway answers (for ``GET /v1/models``): ``TASK`` for each
    task with a production holder, and ``TASK:ALIAS`` for every alias."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Alias.task, Alias.alias).order_by(Alias.task, Alias.alias))
        names: list[str] = []
        for task, alias in rows:
            if alias == DEFAULT_ALIAS:
                names.append(task)
            names.append(f"{task}{SEPARATOR}{alias}")
    return names


# --------------------------------------------------------------------------- internals


def _running_deployments(conn: sa.Connection, rows: list[sa.Row]) -> dict[tuple[str, str], sa.Row]:
    """The newest running deployment of each (provider, model), in one query."""
    keys = {(r.provider, r.model) for r in rows}
    found: dict[tuple[str, str], sa.Row] = {}
    for dep in conn.execute(_RUNNING, {"models": sorted({model for _, model in keys})}):
        if (dep.provider, dep.model) in keys:
            found.setdefault((dep.provider, dep.model), dep)
    return found


def _target(task: str, alias: str, row: sa.Row, running: dict[tuple[str, str], sa.Row]) -> Target:
    dep = running.get((row.provider, row.model))
    return Target(
        task=task,
        alias=alias,
        provider=row.provider,
        model=row.model,
        model_kind=row.model_kind,
        base_model=row.base_model,
        promotion_id=row.id,
        deployment_id=dep.id if dep is not None else None,
        deployment=contract_deployment(dep) if dep is not None else None,
        needs_deployment=_deployment_kind(row.provider, row.model) != "serverless",
    )


def _unknown_message(conn: sa.Connection, task: str, alias: str, holders: dict) -> str:
    if not task:
        return "no model given: ask for TASK or TASK:ALIAS (GET /v1/models lists them)"
    if holders:
        have = ", ".join(f"{task}:{a}" for a in sorted(holders))
        return (
            f"task {task!r} has no alias {alias!r}; it has {have} "
            f"(promote one with: ftm promote --task {task} --alias {alias} --run ID)"
        )
    tasks = sorted({t for (t,) in conn.execute(sa.select(Alias.task).distinct())})
    known = (
        ", ".join(tasks)
        if tasks
        else "none yet (promote a model with: ftm promote --task TASK --run ID)"
    )
    return f"no task {task!r} is served; tasks with a promoted model: {known}"


_kinds: dict[tuple[str, str], str] = {}
_providers: dict[str, object] = {}
_lock = threading.Lock()


def _deployment_kind(provider: str, model: str) -> str:
    """`Provider.deployment_kind`, asked of a provider built once per process (building
    one reads settings; a request must not). A provider that cannot be built (not
    installed, bad settings) counts as serverless: the call itself will then fail with
    the provider's own error, which says what to fix."""
    key = (provider, model)
    kind = _kinds.get(key)
    if kind is not None:
        return kind
    with _lock:
        instance = _providers.get(provider)
        if instance is None:
            from app.jobs.providers import make_provider

            try:
                instance = make_provider(provider)
            except Exception:  # noqa: BLE001 - see the docstring
                _kinds[key] = "serverless"
                return "serverless"
            _providers[provider] = instance
        try:
            kind = instance.deployment_kind(model)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a broken plugin must not break routing
            kind = "serverless"
        _kinds[key] = kind
    return kind


def forget_providers() -> None:
    """Drop the cached provider objects (settings changed; tests)."""
    with _lock:
        for instance in _providers.values():
            close = getattr(instance, "close", None)
            if close:
                close()
        _providers.clear()
        _kinds.clear()
