"""`ftm db`: the database's state, its migrations, and copying it to another database
(SQLite to PostgreSQL and back). The work is `app.dbadmin`'s; this prints it."""

from __future__ import annotations

import json

import click

from app.cli.errors import UserError
from app.cli.tables import Column, print_table


@click.group("db")
def db() -> None:
    """ftm's database: its state and migrations, and a verified copy to another one."""


def _configured_url() -> str:
    from app.settings import get_settings

    return get_settings().resolved_database_url


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def db_status(as_json: bool) -> None:
    """The configured database: backend, where its URL comes from, schema revision,
    pending migrations, size and rows per table. Looks without migrating anything."""
    from app.dbadmin.status import database_status

    status = database_status(_configured_url())
    if as_json:
        click.echo(json.dumps(status.to_dict(), indent=2))
        return
    click.echo(f"Database: {status.url}")
    click.echo(f"  from:     {status.origin}")
    click.echo(f"  backend:  {status.server_version or status.backend}")
    if not status.exists:
        click.echo("  size:     - (not created yet: ftm creates it on first use)")
    else:
        click.echo(f"  size:     {_size(status.size_bytes)}")
    click.echo(f"  revision: {status.current or '(none: blank)'}")
    if status.newer_than_ftm:
        click.echo(
            f"  This revision is unknown to this ftm (newest known: {status.head}): a newer "
            "ftm wrote the database. Use that ftm."
        )
    elif status.pending:
        click.echo(f"  pending:  {len(status.pending)} migration(s), applied by: ftm db upgrade")
        for m in status.pending:
            click.echo(f"    {m.revision}  {m.title}")
    else:
        click.echo("  pending:  none (up to date)")
    if status.rows:
        click.echo("")
        print_table(
            [Column("TABLE"), Column("ROWS", align="right")],
            [[name, str(n)] for name, n in sorted(status.rows.items())],
        )


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the pending migrations to the configured database and say which.
    (Every other command does this on first use; this lets a team look first.)"""
    from app.dbadmin import DatabaseAdminError
    from app.dbadmin.status import upgrade

    try:
        before, applied = upgrade(_configured_url())
    except DatabaseAdminError as exc:
        raise UserError(str(exc)) from None
    if not applied:
        click.echo(f"{before.url} is up to date (revision {before.head}); nothing to apply.")
        return
    click.echo(f"Applied {len(applied)} migration(s) to {before.url}:")
    for m in applied:
        click.echo(f"  {m.revision}  {m.title}")
    click.echo(f"Now at revision {before.head}.")


@db.command("copy")
@click.option("--to", "target", required=True, help="URL of an empty database to copy into.")
@click.option(
    "--from", "source", default=None, help="URL of the database to copy (default: ftm's own)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def db_copy(target: str, source: str | None, as_json: bool) -> None:
    """Copy every row of ftm's database into an empty database at --to (SQLite to
    PostgreSQL or back), ids kept, verified by row counts and content hashes per table
    before anything is committed. The source is only read."""
    from app.dbadmin import DatabaseAdminError
    from app.dbadmin.copy import BATCH_ROWS, copy_database

    def progress(table: str, done: int, total: int) -> None:
        if total > BATCH_ROWS:  # only big tables take long enough to need it
            click.echo(f"  {table}: {done}/{total} rows", err=True)

    try:
        report = copy_database(source or _configured_url(), target, progress=progress)
    except DatabaseAdminError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"Copied {report.source} to {report.target} (revision {report.revision}):")
    print_table(
        [Column("TABLE"), Column("ROWS", align="right"), Column("CONTENT HASH")],
        [[t.name, str(t.rows), t.content_hash[:16]] for t in report.tables],
    )
    total = sum(t.rows for t in report.tables)
    click.echo(
        f"Verified: the {total} rows read back from the target have the source's row counts "
        f"and content hashes, table by table ({report.seconds:.1f} s)."
    )
