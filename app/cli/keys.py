"""`ftm keys`: the keys clients of the gateway (`ftm serve`) authenticate with."""

from __future__ import annotations

import json
from datetime import datetime

import click

from app.cli.errors import UserError
from app.cli.tables import Column, print_table


def _engine():
    from app.database import get_engine

    return get_engine()


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.strftime(fmt) if value is not None else "-"


def _day(value: datetime | None) -> str:
    return _when(value, "%Y-%m-%d")


@click.group("keys")
def keys() -> None:
    """Gateway keys: create one per client application, list them, revoke them."""


@keys.command("create")
@click.argument("name")
def keys_create(name: str) -> None:
    """Issue a gateway key named NAME and print it, once."""
    from app.gateway.keys import GatewayKeyError, create

    try:
        created = create(_engine(), name)
    except GatewayKeyError as exc:
        raise UserError(str(exc)) from None
    # The key alone on stdout, so `KEY=$(ftm keys create app)` captures just it; the
    # warning on stderr, where a person at the terminal still sees it.
    click.echo(
        f"Gateway key {name!r} created. Copy it now: it cannot be shown again "
        "(ftm stores only its hash).",
        err=True,
    )
    click.echo(created.key)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def keys_list(as_json: bool) -> None:
    """Every gateway key: name, prefix, created, last used, revoked."""
    from app.gateway.keys import list_keys

    infos = list_keys(_engine())
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("No gateway keys yet. Create one: ftm keys create NAME")
        return
    columns = [
        # The name is what a person looks for: below 16 characters the creation date is
        # left out rather than the name cut further. Days for created/revoked, minutes for
        # last use (is this key in use right now?); --json has the full times.
        Column("NAME", min_width=16, max_width=40),
        Column("PREFIX"),
        Column("CREATED", priority=2),
        Column("LAST USED", priority=1),
        Column("REVOKED"),
    ]
    rows = [
        [i.name, i.prefix + "…", _day(i.created_at), _when(i.last_used_at), _day(i.revoked_at)]
        for i in infos
    ]
    print_table(columns, rows)


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke the live key named NAME: the gateway refuses it from the next request."""
    from app.gateway.keys import GatewayKeyError, revoke

    try:
        info = revoke(_engine(), name)
    except GatewayKeyError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"Revoked gateway key {info.name!r} ({info.prefix}…).")
