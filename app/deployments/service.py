"""Deployments as records: deploy a model (or the holder of an alias), list them with
their cost to date, stop, delete and refresh them. The CLI (`ftm deploy`, `ftm
deployments`) and the TUI's Deployments view are thin faces of these functions.

How a model is served is the provider's to say (`Provider.deployment_kind`): serverless
(called by its id, billed per token: only recorded here), dedicated (a billed deployment
the provider runs) or local (a server ftm runs). Nothing here branches on a provider's
name.

One row is one run (see billing.py): deploying what already runs returns that row, and a
stopped deployment started again is a new row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from app.deployments.billing import as_utc, running_cost_usd, running_hours
from db.engine import read_session, write_session
from db.models import Deployment, Job, Promotion
from providers.base import Provider
from providers.errors import ProviderError, UnsupportedOperation
from providers.types import Deployment as ServedDeployment
from providers.types import HardwareOption

PRODUCTION = "production"
"""The alias ``ftm deploy TASK`` deploys (an application's default)."""
LIVE_STATES = ("pending", "running", "stopping")
"""States of a row that may be billing: deploying its model again returns it."""
BILLED_KINDS = ("dedicated", "local")
"""Kinds billed by the hour while running (serverless is billed per token)."""

Clock = Callable[[], datetime]
ProviderFactory = Callable[[str], Provider]


class DeploymentError(RuntimeError):
    """A deployment could not be made or changed; the message says what to do."""


@dataclass(frozen=True)
class Target:
    """What to deploy: a model on a provider, and the alias it was asked for by."""

    provider: str
    model: str
    task: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class DeploymentInfo:
    """A row with what is computed from it at ``now``: cost to date (billing.py) and
    idle time."""

    row: Deployment
    hours: float
    cost_usd: float | None
    idle_s: float | None
    """Seconds since its last request (or its start); None unless running."""

    @property
    def id(self) -> int:
        assert self.row.id is not None
        return self.row.id

    def to_dict(self) -> dict[str, Any]:
        row = self.row
        when = {
            name: as_utc(value).isoformat() if (value := getattr(row, name)) else None
            for name in ("started_at", "stopped_at", "last_request_at", "created_at")
        }
        return {
            "id": row.id,
            "provider": row.provider,
            "model": row.model,
            "task": row.task,
            "alias": row.alias,
            "kind": row.kind,
            "state": row.state,
            "hardware": row.hardware,
            "min_replicas": row.min_replicas,
            "max_replicas": row.max_replicas,
            "remote_id": row.remote_id,
            "endpoint_url": row.endpoint_url,
            "usd_per_hour": row.usd_per_hour,
            "hours": round(self.hours, 6),
            "cost_usd": self.cost_usd,
            "idle_s": None if self.idle_s is None else round(self.idle_s),
            "idle_stop_s": row.idle_stop_s,
            "requests_served": row.requests_served,
            "stop_reason": row.stop_reason,
            **when,
        }


@dataclass(frozen=True)
class Deployed:
    """What `deploy` did: the row, and whether it already ran (nothing new was billed)."""

    info: DeploymentInfo
    existed: bool


def utc_now() -> datetime:
    return datetime.now(UTC)


def _default_factory(engine: Engine) -> ProviderFactory:
    def make(name: str) -> Provider:
        from app.jobs.providers import make_provider

        return make_provider(name, engine=engine)

    return make


# -- reading -----------------------------------------------------------------------------


def idle_seconds(row: Deployment, now: datetime) -> float | None:
    """Seconds since the running deployment's last request, or since it started."""
    if row.state != "running":
        return None
    since = row.last_request_at or row.started_at
    if since is None:
        return None
    return max(0.0, (as_utc(now) - as_utc(since)).total_seconds())


def describe(row: Deployment, now: datetime | None = None) -> DeploymentInfo:
    now = now or utc_now()
    return DeploymentInfo(
        row=row,
        hours=running_hours(row, now=now),
        cost_usd=running_cost_usd(row, now=now),
        idle_s=idle_seconds(row, now),
    )


def list_deployments(
    engine: Engine, *, include_ended: bool = False, now: datetime | None = None
) -> list[DeploymentInfo]:
    """Deployments, newest first: the live ones (pending, running, stopping), or with
    ``include_ended`` every row (stopped, failed and deleted ones keep their costs)."""
    with read_session(engine) as session:
        query = select(Deployment).order_by(Deployment.id.desc())  # type: ignore[union-attr]
        if not include_ended:
            query = query.where(Deployment.state.in_(LIVE_STATES))  # type: ignore[attr-defined]
        rows = list(session.exec(query))
    return [describe(row, now) for row in rows]


def get(engine: Engine, deployment_id: int, now: datetime | None = None) -> DeploymentInfo:
    with read_session(engine) as session:
        row = session.get(Deployment, deployment_id)
    if row is None:
        raise DeploymentError(
            f"no deployment {deployment_id}; list them with: ftm deployments list --all"
        )
    return describe(row, now)


def contract_deployment(row: Deployment | Any) -> ServedDeployment:
    """The row in the provider contract's words, for `Provider.deployment_status`,
    `stop_deployment`, `delete_deployment` and `upstream` (the gateway's routing reads
    it too). ``name`` is what a client passes: the served name the provider gave, else
    its id, else the model's own."""
    return ServedDeployment(
        name=row.served_name or row.remote_id or row.model,
        model=row.model,
        state=row.state,
        remote_id=row.remote_id,
        endpoint_url=row.endpoint_url,
        hardware=row.hardware,
        usd_per_hour=row.usd_per_hour,
    )


# -- what to deploy ----------------------------------------------------------------------


def resolve_target(engine: Engine, target: str, provider: str | None = None) -> Target:
    """``TASK:ALIAS`` or ``TASK`` (its production alias) -> the alias's holder; anything
    else is a model id, whose provider is ``provider`` or the one whose job trained it.

    Raises:
        DeploymentError: an alias nobody holds, or a model whose provider is unknown or
            ambiguous (the message says to pass --provider).
    """
    from app.promotion.aliases import current

    task, sep, alias = target.partition(":")
    holder = current(engine, task, alias if sep else PRODUCTION) if task else None
    if holder is not None and holder.promotion is not None:
        held: Promotion = holder.promotion
        if provider and provider != held.provider:
            raise DeploymentError(
                f"{target} is held by {held.model} on {held.provider}, not on {provider}; "
                "leave out --provider to deploy the holder"
            )
        return Target(held.provider, held.model, held.task, held.alias)
    from app.settings import get_settings

    # A model named by its path under the storage root is known by its reference.
    target = get_settings().file_store.ref_for(target) or target
    if provider:
        return Target(provider, target)
    with read_session(engine) as session:
        trained = session.exec(
            select(Job.provider).where(Job.fine_tuned_model == target).distinct()
        ).all()
        promoted = session.exec(
            select(Promotion.provider).where(Promotion.model == target).distinct()
        ).all()
    found = sorted({*trained, *promoted})
    if len(found) == 1:
        return Target(found[0], target)
    if found:
        raise DeploymentError(
            f"{target} is known on several providers ({', '.join(found)}); "
            "say which with --provider"
        )
    alias_hint = f" and no alias {target!r} is held" if sep else ""
    raise DeploymentError(
        f"no ftm job produced the model {target!r}{alias_hint}; pass --provider NAME to "
        "deploy a model ftm did not train, or TASK:ALIAS to deploy an alias's holder "
        "(ftm models list shows them)"
    )


def hardware_options(engine: Engine, target: str, provider: str | None = None, *, make=None):
    """The resolved target and its provider's hardware options with their $/hour."""
    resolved = resolve_target(engine, target, provider)
    served_by = (make or _default_factory(engine))(resolved.provider)
    try:
        return resolved, served_by.deployment_hardware(resolved.model)
    except ProviderError as exc:
        raise DeploymentError(
            f"could not list the hardware for {resolved.model}: {exc.message}"
        ) from None
    finally:
        served_by.close()


def _hourly_price(
    served: ServedDeployment, options: list[HardwareOption], hardware: str | None, replicas: int
) -> float | None:
    """The provider's own figure for the deployment, else its hardware's price per
    replica-hour times the replicas it runs at the least."""
    if served.usd_per_hour is not None:
        return served.usd_per_hour
    chosen = served.hardware or hardware
    for option in options:
        if option.id == chosen and option.usd_per_hour is not None:
            return option.usd_per_hour * replicas
    return None


def _row_state(served: ServedDeployment) -> str:
    """A provider's state word as a row state."""
    if served.ready:
        return "running"
    if served.failed:
        return "failed"
    word = served.state.lower()
    if word in ("stopped", "stopping"):
        return "stopped"
    if word in ("deleted", "notfound", "not_found", "gone"):
        return "deleted"
    return "pending"


# -- deploying ---------------------------------------------------------------------------


def deploy(
    engine: Engine,
    target: str,
    *,
    provider: str | None = None,
    hardware: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    idle_stop_s: int | None = None,
    wait: bool = True,
    make: ProviderFactory | None = None,
    clock: Clock = utc_now,
) -> Deployed:
    """Make ``target`` callable and record it (see `resolve_target` for ``target``).

    Deploying what already runs (or is starting) returns its row: never two billed
    deployments of one model. A serverless model is recorded as running at once, with no
    hourly price (it is billed per token).

    Raises:
        DeploymentError: an unknown target, bad replicas or hardware, or the provider
            refused (its message, which says what to change).
    """
    if not 1 <= min_replicas <= max_replicas:
        raise DeploymentError(
            f"replicas must be 1 <= min ({min_replicas}) <= max ({max_replicas}); "
            "e.g. --min-replicas 1 --max-replicas 2"
        )
    if idle_stop_s is not None and idle_stop_s <= 0:
        raise DeploymentError("the idle limit must be above zero, e.g. --idle-stop 30m")
    resolved = resolve_target(engine, target, provider)
    served_by = (make or _default_factory(engine))(resolved.provider)
    try:
        kind = served_by.deployment_kind(resolved.model)
        row, existed = _claim_row(
            engine, resolved, kind, hardware, min_replicas, max_replicas, idle_stop_s, clock
        )
        if existed and row.state == "running":
            return Deployed(describe(row, clock()), existed=True)
        if kind == "serverless":
            return Deployed(describe(row, clock()), existed=existed)
        return Deployed(
            _provision(engine, served_by, row, hardware, min_replicas, max_replicas, wait, clock),
            existed=existed,
        )
    finally:
        served_by.close()


def _claim_row(
    engine: Engine,
    target: Target,
    kind: str,
    hardware: str | None,
    min_replicas: int,
    max_replicas: int,
    idle_stop_s: int | None,
    clock: Clock,
) -> tuple[Deployment, bool]:
    """The live row of this model, or a new one: looked up and written in one write
    transaction, so two `ftm deploy` at once make one row."""
    with write_session(engine) as session:
        live = session.exec(
            select(Deployment)
            .where(
                Deployment.provider == target.provider,
                Deployment.model == target.model,
                Deployment.state.in_(LIVE_STATES),  # type: ignore[attr-defined]
            )
            .order_by(Deployment.id)  # type: ignore[arg-type]
        ).first()
        if live is not None:
            return live, True
        now = clock()
        serverless = kind == "serverless"
        row = Deployment(
            provider=target.provider,
            model=target.model,
            task=target.task,
            alias=target.alias,
            kind=kind,
            hardware=None if serverless else hardware,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            state="running" if serverless else "pending",
            started_at=now if serverless else None,
            # Billed per token: no idle fee, so no idle stop.
            idle_stop_s=None if serverless else idle_stop_s,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row, False


def _provision(
    engine: Engine,
    served_by: Provider,
    row: Deployment,
    hardware: str | None,
    min_replicas: int,
    max_replicas: int,
    wait: bool,
    clock: Clock,
) -> DeploymentInfo:
    """Ask the provider for the deployment and record what it answered."""
    options: list[HardwareOption] = []
    try:
        options = served_by.deployment_hardware(row.model)
        known = [option.id for option in options]
        if hardware and known and hardware not in known:
            raise DeploymentError(
                f"{served_by.display_name} has no hardware {hardware!r} for {row.model}; "
                f"choose one of {', '.join(known)} (ftm deployments hardware {row.model})"
            )
        served = served_by.deploy(
            row.model,
            wait=wait,
            hardware=hardware,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
        )
    except (ProviderError, UnsupportedOperation, DeploymentError) as exc:
        _record(engine, row.id, clock(), state="failed", stop_reason="failed")
        message = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, DeploymentError):
            raise
        # A provider's refusal already names the model and what to change, in one line.
        if row.model not in message:
            message = f"{served_by.display_name} did not deploy {row.model}: {message}"
        raise DeploymentError(message) from None
    state = _row_state(served)
    now = clock()
    updated = _record(
        engine,
        row.id,
        now,
        state=state,
        remote_id=served.remote_id or (served.name if served.name != row.model else None),
        served_name=served.name,
        endpoint_url=served.endpoint_url,
        hardware=served.hardware or hardware or row.hardware,
        usd_per_hour=_hourly_price(served, options, hardware, min_replicas),
        started_at=now if state == "running" else None,
    )
    return describe(updated, now)


def _record(engine: Engine, deployment_id: int | None, now: datetime, **changes: Any) -> Deployment:
    """Write ``changes`` to the row (None values leave a field as it is)."""
    with write_session(engine) as session:
        row = session.get(Deployment, deployment_id)
        assert row is not None
        for name, value in changes.items():
            if value is not None:
                setattr(row, name, value)
        row.updated_at = now
        session.add(row)
    return row


# -- changing ----------------------------------------------------------------------------


def stop(
    engine: Engine,
    deployment_id: int,
    *,
    reason: str = "user",
    make: ProviderFactory | None = None,
    now: datetime | None = None,
) -> DeploymentInfo:
    """Stop it at the provider (billing stops) and record when and why (``user`` or
    ``idle``). A serverless one only stops being recorded as served; one already ended
    is returned as it is."""
    info = get(engine, deployment_id)
    row = info.row
    if row.state not in LIVE_STATES:
        return info
    if row.kind in BILLED_KINDS:
        served_by = (make or _default_factory(engine))(row.provider)
        try:
            served_by.stop_deployment(contract_deployment(row))
        except (ProviderError, UnsupportedOperation) as exc:
            raise DeploymentError(
                f"could not stop deployment {deployment_id} ({row.model}) at "
                f"{served_by.display_name}: {getattr(exc, 'message', exc)}; it may still "
                f"bill: try again (ftm deployments stop {deployment_id})"
            ) from None
        finally:
            served_by.close()
    now = now or utc_now()
    ended = _record(
        engine,
        row.id,
        now,
        state="stopped",
        stopped_at=now if row.started_at else None,
        stop_reason=reason,
    )
    return describe(ended, now)


def delete(
    engine: Engine,
    deployment_id: int,
    *,
    make: ProviderFactory | None = None,
    now: datetime | None = None,
) -> DeploymentInfo:
    """Delete it at the provider for good; the row stays (state ``deleted``) for its
    costs. A running one stops billing now."""
    info = get(engine, deployment_id)
    row = info.row
    if row.state == "deleted":
        return info
    if row.kind in BILLED_KINDS and row.state != "failed":
        served_by = (make or _default_factory(engine))(row.provider)
        try:
            served_by.delete_deployment(contract_deployment(row))
        except (ProviderError, UnsupportedOperation) as exc:
            raise DeploymentError(
                f"could not delete deployment {deployment_id} ({row.model}) at "
                f"{served_by.display_name}: {getattr(exc, 'message', exc)}; try again"
            ) from None
        finally:
            served_by.close()
    now = now or utc_now()
    running = row.state in LIVE_STATES and row.started_at is not None and row.stopped_at is None
    gone = _record(
        engine,
        row.id,
        now,
        state="deleted",
        stopped_at=now if running else None,
        stop_reason="user" if running else None,
    )
    return describe(gone, now)


def refresh(
    engine: Engine,
    deployment_id: int,
    *,
    make: ProviderFactory | None = None,
    now: datetime | None = None,
) -> DeploymentInfo:
    """Read its state from the provider (it may have started, failed, or been stopped
    outside ftm) and record it. Serverless and ended rows are returned as they are."""
    info = get(engine, deployment_id)
    row = info.row
    if row.kind not in BILLED_KINDS or row.state not in LIVE_STATES:
        return info
    served_by = (make or _default_factory(engine))(row.provider)
    try:
        served = served_by.deployment_status(contract_deployment(row))
    except (ProviderError, UnsupportedOperation) as exc:
        raise DeploymentError(
            f"could not read deployment {deployment_id} ({row.model}) from "
            f"{served_by.display_name}: {getattr(exc, 'message', exc)}"
        ) from None
    finally:
        served_by.close()
    now = now or utc_now()
    state = _row_state(served)
    changes: dict[str, Any] = {"state": state}
    if state == "running" and row.started_at is None:
        changes["started_at"] = now
    if state in ("stopped", "failed", "deleted") and row.started_at and not row.stopped_at:
        changes["stopped_at"] = now
        changes["stop_reason"] = "provider" if state != "failed" else "failed"
    if served.endpoint_url:
        changes["endpoint_url"] = served.endpoint_url
    return describe(_record(engine, row.id, now, **changes), now)
