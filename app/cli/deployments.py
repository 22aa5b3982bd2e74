"""`ftm deploy` and `ftm deployments`: make a model callable, and see, stop and delete
what is deployed with its cost to date. Thin: app/deployments/ does the work."""

from __future__ import annotations

import json

import click

from app.cli.errors import UserError
from app.cli.tables import Column, print_table


def _engine():
    from app.database import get_engine

    return get_engine()


def _idle_stop(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from app.deployments.durations import DurationError, parse_duration

    try:
        return parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc)) from None


def _summary(info) -> str:
    """One paragraph on a deployment: what, where, state, price, cost to date."""
    from app.costs.money import usd
    from app.deployments.durations import format_duration

    row = info.row
    where = f" on {row.hardware}" if row.hardware else ""
    replicas = (
        f" x{row.min_replicas}"
        if row.min_replicas == row.max_replicas
        else f" ({row.min_replicas}-{row.max_replicas} replicas)"
    )
    price = (
        f"{usd(row.usd_per_hour)}/hour{replicas if row.hardware else ''}"
        if row.usd_per_hour is not None
        else ("billed per token" if row.kind == "serverless" else "no hourly price known")
    )
    lines = [
        f"Deployment {row.id}: {row.model} ({row.provider}, {row.kind}), {row.state}{where}",
        f"  price: {price}; cost to date: {usd(info.cost_usd)}; "
        f"requests served: {row.requests_served}",
    ]
    if row.alias:
        lines.append(f"  deployed for: {row.task}:{row.alias}")
    if row.endpoint_url or row.remote_id:
        lines.append(f"  endpoint: {row.endpoint_url or row.remote_id}")
    if info.idle_s is not None:
        limit = (
            f"; stops after {format_duration(row.idle_stop_s)} idle"
            if row.idle_stop_s
            else "; no idle limit"
        )
        lines.append(f"  idle: {format_duration(info.idle_s)}{limit}")
    if row.stop_reason:
        lines.append(f"  stopped: {row.stop_reason}")
    return "\n".join(lines)


@click.command("deploy")
@click.argument("target")
@click.option("--provider", help="The model's provider, when ftm cannot tell from its jobs.")
@click.option("--hardware", help="Hardware id (see: ftm deployments hardware MODEL).")
@click.option("--min-replicas", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-replicas", type=click.IntRange(min=1), default=None, help="Default: min.")
@click.option(
    "--idle-stop",
    callback=_idle_stop,
    help="Stop it after this long without a request (30m, 2h, 45s).",
)
@click.option("--no-wait", is_flag=True, help="Return once requested, without waiting.")
def deploy_command(
    target: str,
    provider: str | None,
    hardware: str | None,
    min_replicas: int,
    max_replicas: int | None,
    idle_stop: int | None,
    no_wait: bool,
) -> None:
    """Make MODEL (or the holder of TASK:ALIAS, or of TASK's production alias) callable.

    A hosted model billed per token is recorded as serverless; one that needs a billed
    endpoint (or a local server) is deployed and billed by the hour until stopped.
    Deploying what already runs returns it (never two billed endpoints)."""
    from app.deployments.service import DeploymentError, deploy

    try:
        done = deploy(
            _engine(),
            target,
            provider=provider,
            hardware=hardware,
            min_replicas=min_replicas,
            max_replicas=max_replicas or min_replicas,
            idle_stop_s=idle_stop,
            wait=not no_wait,
        )
    except DeploymentError as exc:
        raise UserError(str(exc)) from None
    row = done.info.row
    ignored = [
        name
        for name, given in (
            ("--hardware", hardware),
            ("replicas", min_replicas > 1 or (max_replicas or 1) > 1),
            ("--idle-stop", idle_stop),
        )
        if given
    ]
    if row.kind == "serverless" and ignored:
        click.echo(
            f"Note: {', '.join(ignored)} ignored: {row.model} is served by {row.provider} "
            "per token, with nothing to size or stop.",
            err=True,
        )
    if done.existed:
        click.echo(f"Already deployed (deployment {row.id}): nothing new is billed.")
    click.echo(_summary(done.info))
    if row.kind != "serverless" and row.idle_stop_s is None and row.state != "failed":
        click.echo(
            "  It bills while running, used or not: stop it with "
            f"`ftm deployments stop {row.id}`, or deploy with --idle-stop 30m."
        )


@click.group("deployments")
def deployments() -> None:
    """Deployed models: list them with cost to date, show, stop, delete; hardware."""


@deployments.command("list")
@click.option("--all", "show_all", is_flag=True, help="Stopped and deleted ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def deployments_list(show_all: bool, as_json: bool) -> None:
    """Deployments (live ones; --all: every one, with its cost)."""
    from app.costs.money import usd
    from app.deployments.durations import format_duration
    from app.deployments.service import list_deployments

    infos = list_deployments(_engine(), include_ended=show_all)
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo(
            "No deployments"
            + ("" if show_all else " running (--all: stopped ones too)")
            + ". Deploy one: ftm deploy MODEL|TASK:ALIAS"
        )
        return
    columns = [
        Column("ID", align="right"),
        Column("MODEL", min_width=24, max_width=44, cut="middle"),
        Column("STATE"),
        Column("KIND", priority=3),
        Column("$/H", align="right", priority=1),
        Column("COST", align="right"),
        Column("IDLE", align="right", priority=2),
        Column("REQS", align="right", priority=4),
        Column("HARDWARE", priority=5),
    ]
    rows = [
        [
            str(info.id),
            info.row.model,
            info.row.state,
            info.row.kind,
            usd(info.row.usd_per_hour),
            usd(info.cost_usd),
            format_duration(info.idle_s),
            str(info.row.requests_served),
            info.row.hardware or "-",
        ]
        for info in infos
    ]
    print_table(columns, rows)


@deployments.command("show")
@click.argument("deployment_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def deployments_show(deployment_id: int, as_json: bool) -> None:
    """One deployment, its state read afresh from the provider."""
    from app.deployments.service import DeploymentError, get, refresh

    engine = _engine()
    try:
        info = get(engine, deployment_id)  # an unknown id is an error of its own
        try:
            info = refresh(engine, deployment_id)
        except DeploymentError as exc:  # the record is still worth showing
            click.echo(f"warning: showing the recorded state; {exc}", err=True)
    except DeploymentError as exc:
        raise UserError(str(exc)) from None
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else _summary(info))


@deployments.command("stop")
@click.argument("deployment_id", type=int)
def deployments_stop(deployment_id: int) -> None:
    """Stop it: billing stops (`ftm deploy` starts it again, as a new deployment)."""
    from app.costs.money import usd
    from app.deployments.service import LIVE_STATES, DeploymentError, get, stop

    engine = _engine()
    try:
        before = get(engine, deployment_id)
        if before.row.state not in LIVE_STATES:
            click.echo(f"Deployment {deployment_id} is already {before.row.state}.")
            return
        info = stop(engine, deployment_id, reason="user")
    except DeploymentError as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"Stopped deployment {deployment_id} ({info.row.model}); "
        f"it cost {usd(info.cost_usd)} while it ran."
    )


@deployments.command("delete")
@click.argument("deployment_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
def deployments_delete(deployment_id: int, yes: bool) -> None:
    """Delete it at the provider for good (its record and costs stay)."""
    from app.deployments.service import DeploymentError, delete, get

    engine = _engine()
    try:
        info = get(engine, deployment_id)
        if not yes and not click.confirm(
            f"Delete deployment {deployment_id} ({info.row.model}) at {info.row.provider}?",
            default=False,
        ):
            raise UserError("not deleted")
        delete(engine, deployment_id)
    except DeploymentError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"Deleted deployment {deployment_id} ({info.row.model}).")


@deployments.command("hardware")
@click.argument("target")
@click.option("--provider", help="The model's provider, when ftm cannot tell from its jobs.")
def deployments_hardware(target: str, provider: str | None) -> None:
    """The hardware MODEL (or TASK:ALIAS) can be deployed on, with $/hour per replica."""
    from app.costs.money import usd
    from app.deployments.service import DeploymentError, hardware_options

    try:
        resolved, options = hardware_options(_engine(), target, provider)
    except DeploymentError as exc:
        raise UserError(str(exc)) from None
    if not options:
        click.echo(
            f"{resolved.provider} offers no hardware to choose for {resolved.model} "
            "(it is served without a deployment, or on its own terms)."
        )
        return
    columns = [
        Column("HARDWARE", min_width=12),
        Column("$/H PER REPLICA", align="right"),
        Column("AVAILABLE", priority=1),
        Column("DESCRIPTION", priority=2, min_width=10),
    ]
    rows = [
        [o.id, usd(o.usd_per_hour), "yes" if o.available else "no", o.description] for o in options
    ]
    print_table(columns, rows)
