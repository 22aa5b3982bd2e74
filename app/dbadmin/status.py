"""What state the configured database is in, without changing it, and bringing it to the
newest schema on request."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, inspect, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.database import database_origin, engine_for, looking_at, masked_url
from app.dbadmin import DatabaseAdminError


@dataclass(frozen=True)
class Migration:
    revision: str
    title: str


@dataclass(frozen=True)
class DatabaseStatus:
    url: str
    """The URL, its password masked."""
    origin: str
    """Where the URL came from (a setting, the default in ftm's home)."""
    backend: str
    """``sqlite`` or ``postgresql`` (or another SQLAlchemy backend's name)."""
    server_version: str | None
    exists: bool
    """False: an SQLite file not created yet (ftm creates it on first use)."""
    current: str | None
    """The schema revision applied; None for a blank database."""
    head: str
    """The newest revision this ftm knows."""
    pending: list[Migration]
    newer_than_ftm: bool
    """The database's revision is unknown to this ftm: a newer one wrote it."""
    size_bytes: int | None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per ftm table present in the database."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def database_status(url: str) -> DatabaseStatus:
    """The state of the database at ``url``, read without migrating or writing it."""
    from db import migrate  # alembic: slow to import

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:  # `looking_at` below says what is wrong with it
        backend = url.split(":", 1)[0]
    shown, origin, head = masked_url(url), database_origin(url), migrate.head_revision()
    file = sqlite_file(url)
    if file is not None and not file.exists():
        return DatabaseStatus(
            url=shown,
            origin=origin,
            backend=backend,
            server_version=f"SQLite {sqlite3.sqlite_version}",
            exists=False,
            current=None,
            head=head,
            pending=_pending(None),
            newer_than_ftm=False,
            size_bytes=None,
        )
    with looking_at(url) as probe, probe.connect() as connection:
        current = migrate.current_revision(probe)
        newer = current is not None and not migrate.is_known_revision(current)
        return DatabaseStatus(
            url=shown,
            origin=origin,
            backend=backend,
            server_version=_server_version(connection),
            exists=True,
            current=current,
            head=head,
            pending=[] if newer else _pending(current),
            newer_than_ftm=newer,
            size_bytes=_size(connection, file),
            rows=row_counts(connection),
        )


def upgrade(url: str) -> tuple[DatabaseStatus, list[Migration]]:
    """Apply the pending migrations to the database at ``url``; returns its status
    before and the migrations applied (none when it was at the newest already)."""
    before = database_status(url)
    if before.newer_than_ftm:
        raise DatabaseAdminError(
            f"the database {before.url} ({before.origin}) is at schema revision "
            f"{before.current!r}, which this ftm does not know: a newer ftm wrote it. It was "
            "left untouched. Upgrade ftm instead."
        )
    engine_for(url)  # opening migrates, with the same refusals and messages as any command
    return before, before.pending


def row_counts(connection: Connection) -> dict[str, int]:
    """Rows in each of ftm's tables that exists in the database, in foreign-key order."""
    present = set(inspect(connection).get_table_names())
    return {
        t.name: connection.execute(select(func.count()).select_from(table(t.name))).scalar_one()
        for t in SQLModel.metadata.sorted_tables
        if t.name in present
    }


def _pending(current: str | None) -> list[Migration]:
    from db import migrate

    return [Migration(rev, title) for rev, title in migrate.pending_revisions(current)]


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for other backends and in-memory databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # `looking_at` says what is wrong with it
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _server_version(connection: Connection) -> str | None:
    if connection.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    if connection.dialect.name == "postgresql":
        version = connection.exec_driver_sql("SHOW server_version").scalar()
        return f"PostgreSQL {version}"
    info = connection.dialect.server_version_info
    return ".".join(str(part) for part in info) if info else None


def _size(connection: Connection, file: Path | None) -> int | None:
    """Bytes on disk: the SQLite file with its write-ahead log, or PostgreSQL's
    pg_database_size."""
    if file is not None:
        wal = file.with_name(file.name + "-wal")
        return file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql(
            "SELECT pg_database_size(current_database())"
        ).scalar_one()
    return None
