"""`ftm db copy`: every row of one ftm database into another, empty one (SQLite to
PostgreSQL or back), verified before it is committed.

Tables go in foreign-key order with their ids kept, rows in primary-key order (a promotion
points at an earlier one) and in batches, never all in memory. The target is written in
one transaction and checked inside it: per table, its row count and content hash
(`app.dbadmin.content_hash`) read back from the target must equal the source's, else the
transaction is rolled back and the copy fails, naming the tables that differ. The source
is only read, inside one transaction (a consistent snapshot on either backend). On
PostgreSQL the id sequences are then moved past the copied ids, so new rows get fresh ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.database import engine_for, looking_at, masked_url
from app.dbadmin import DatabaseAdminError
from app.dbadmin.content_hash import TableHash, is_json, readable_columns, utc
from app.dbadmin.status import row_counts, sqlite_file
from app.settings import mask_passwords

BATCH_ROWS = 1000

Progress = Callable[[str, int, int], None]
"""Called after each batch: the table, rows copied so far, rows in the table."""


@dataclass(frozen=True)
class TableCopy:
    name: str
    rows: int
    content_hash: str


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    revision: str
    tables: list[TableCopy]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableMismatch:
    name: str
    source_rows: int
    target_rows: int
    source_hash: str
    target_hash: str


class CopyMismatch(DatabaseAdminError):
    """The target read back differs from the source: nothing was committed."""

    def __init__(self, message: str, mismatches: list[TableMismatch]) -> None:
        super().__init__(message)
        self.mismatches = mismatches


def copy_database(
    source_url: str,
    target_url: str,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy the ftm database at ``source_url`` into the empty one at ``target_url``.

    Raises:
        DatabaseAdminError: same database twice, a source not at this ftm's newest schema,
            a target that is not empty, rows the target refuses.
        CopyMismatch: the copy read back differs from the source (nothing committed).
        DatabaseUnusable: either database cannot be opened.
    """
    from db import migrate  # alembic: slow to import

    started = time.monotonic()
    source_shown, target_shown = masked_url(source_url), masked_url(target_url)
    if _same_database(source_url, target_url):
        raise DatabaseAdminError(
            f"the source and the target are the same database ({source_shown}). "
            "Give --to a new, empty database."
        )
    head = migrate.head_revision()
    _check_source(source_url, head)
    _prepare_target(target_url)
    tables = list(SQLModel.metadata.sorted_tables)
    source, target = engine_for(source_url), engine_for(target_url)
    copied: list[TableCopy] = []
    table_name = ""
    try:
        with source.connect() as src, target.connect() as dst:
            if src.dialect.name == "postgresql":  # one snapshot across every table
                src = src.execution_options(isolation_level="REPEATABLE READ")
            with src.begin():
                _check_source_columns(src, tables, source_shown)
                with dst.begin() as transaction:
                    for table in tables:
                        table_name = table.name
                        copied.append(_copy_table(src, dst, table, batch_rows, progress))
                    table_name = ""
                    mismatches = _verify(dst, tables, copied, batch_rows)
                    if mismatches:
                        transaction.rollback()
                        raise CopyMismatch(
                            _mismatch_message(mismatches, source_shown, target_shown),
                            mismatches,
                        )
                    _move_sequences_past_ids(dst, tables)
    except DBAPIError as exc:
        where = f" table {table_name}" if table_name else ""
        raise DatabaseAdminError(
            f"copying{where} from {source_shown} to {target_shown} failed: "
            f"{_reason(exc, source_url, target_url)}. Nothing was committed to the target; "
            "the source is untouched."
        ) from None
    return CopyReport(
        source=source_shown,
        target=target_shown,
        revision=head,
        tables=copied,
        seconds=round(time.monotonic() - started, 3),
    )


def _check_source(url: str, head: str) -> None:
    from db import migrate

    shown = masked_url(url)
    file = sqlite_file(url)
    if file is not None and not file.is_file():
        raise DatabaseAdminError(f"there is no database at {shown}: nothing to copy.")
    with looking_at(url) as probe:
        current = migrate.current_revision(probe)
    if current == head:
        return
    if current is None:
        raise DatabaseAdminError(f"the database {shown} has no ftm schema: nothing to copy.")
    if not migrate.is_known_revision(current):
        raise DatabaseAdminError(
            f"the source {shown} is at schema revision {current!r}, unknown to this ftm "
            "(a newer one wrote it). Copy it with that newer ftm."
        )
    raise DatabaseAdminError(
        f"the source {shown} is at schema revision {current!r}, not this ftm's newest "
        f"({head!r}); a copy is made at the newest only. Upgrade it first: ftm db upgrade "
        "(with FTM_DATABASE_URL set to it when it is not your configured database)."
    )


def _prepare_target(url: str) -> None:
    """Refuse a target that holds anything; bring an empty one to the newest schema."""
    from db import migrate

    shown = masked_url(url)
    with looking_at(url) as probe:
        current = migrate.current_revision(probe)
        with probe.connect() as connection:
            present = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
            filled = {name: n for name, n in row_counts(connection).items() if n}
    if current is not None and not migrate.is_known_revision(current):
        raise DatabaseAdminError(
            f"the target {shown} is at schema revision {current!r}, unknown to this ftm "
            "(a newer one wrote it). Give --to a new, empty database."
        )
    if current is None and present:
        raise DatabaseAdminError(
            f"the target {shown} is not empty: it holds tables that are not ftm's "
            f"({', '.join(sorted(present)[:5])}). Give --to a new, empty database "
            "(PostgreSQL: createdb NAME; SQLite: a file that does not exist yet)."
        )
    if filled:
        counts = ", ".join(f"{name} {n}" for name, n in filled.items())
        raise DatabaseAdminError(
            f"the target {shown} is not empty (rows: {counts}); ftm copies into an empty "
            "database only, so nothing there is overwritten. Give --to a new, empty "
            "database (PostgreSQL: createdb NAME; SQLite: a file that does not exist yet)."
        )
    engine_for(url)  # migrates it to the newest schema


def _check_source_columns(src: Connection, tables: Sequence[sa.Table], shown: str) -> None:
    """The source must hold exactly this ftm's tables and columns: anything else would
    be left behind silently."""
    inspector = inspect(src)
    known = {t.name for t in tables}
    extra = set(inspector.get_table_names()) - known - {"alembic_version"}
    if extra:
        raise DatabaseAdminError(
            f"the source {shown} holds tables this ftm does not know "
            f"({', '.join(sorted(extra))}); they would not be copied. Nothing was copied."
        )
    for table in tables:
        found = {c["name"] for c in inspector.get_columns(table.name)}
        expected = {c.name for c in table.columns}
        if found != expected:
            raise DatabaseAdminError(
                f"the source {shown}'s table {table.name} has other columns than this "
                f"ftm's schema (extra: {sorted(found - expected)}, missing: "
                f"{sorted(expected - found)}). Nothing was copied."
            )


def _copy_table(
    src: Connection,
    dst: Connection,
    table: sa.Table,
    batch_rows: int,
    progress: Progress | None,
) -> TableCopy:
    total = src.execute(select(sa.func.count()).select_from(table)).scalar_one()
    query = select(*readable_columns(table)).order_by(*table.primary_key.columns)
    writer = _writer(table)
    columns = sorted(table.columns, key=lambda c: c.name)
    seen = TableHash(table)
    result = src.execution_options(yield_per=batch_rows).execute(query)
    for batch in result.partitions():
        seen.add(batch)
        dst.execute(writer.insert(), [_insertable(row, columns) for row in batch])
        if progress is not None:
            progress(table.name, seen.rows, total)
    return TableCopy(table.name, seen.rows, seen.hexdigest())


def _writer(table: sa.Table) -> sa.Table:
    """``table`` for inserting: JSON columns write None as SQL NULL (and `sa.JSON.NULL`
    as JSON null), so each kind of null arrives as it left."""
    return sa.Table(
        table.name,
        sa.MetaData(),
        *(
            sa.Column(c.name, sa.JSON(none_as_null=True) if is_json(c) else c.type)
            for c in table.columns
        ),
    )


def _insertable(row: Sequence[Any], columns: Sequence[sa.Column[Any]]) -> dict[str, Any]:
    """One row as read by `readable_columns`, as values to insert."""
    values: dict[str, Any] = {}
    for column, value in zip(columns, row, strict=True):
        if value is not None and is_json(column):
            parsed = json.loads(value)
            value = sa.JSON.NULL if parsed is None else parsed
        elif hasattr(value, "tzinfo") and hasattr(value, "astimezone"):
            # UTC for both: PostgreSQL reads a naive time in the session's time zone, and
            # SQLite keeps the wall time of an aware one, whatever its zone.
            value = utc(value)
        elif isinstance(value, memoryview):
            value = bytes(value)
        values[column.name] = value
    return values


def table_hashes(
    connection: Connection, tables: Sequence[sa.Table], batch_rows: int = BATCH_ROWS
) -> list[TableCopy]:
    """Each table's row count and content hash, rows streamed in batches."""
    found = []
    for table in tables:
        hashed = TableHash(table)
        result = connection.execution_options(yield_per=batch_rows).execute(
            select(*readable_columns(table))
        )
        for batch in result.partitions():
            hashed.add(batch)
        found.append(TableCopy(table.name, hashed.rows, hashed.hexdigest()))
    return found


def _verify(
    dst: Connection, tables: Sequence[sa.Table], copied: Sequence[TableCopy], batch_rows: int
) -> list[TableMismatch]:
    """Each table read back from the target against what was read from the source."""
    return [
        TableMismatch(source.name, source.rows, found.rows, source.content_hash, found.content_hash)
        for source, found in zip(copied, table_hashes(dst, tables, batch_rows), strict=True)
        if (found.rows, found.content_hash) != (source.rows, source.content_hash)
    ]


def _mismatch_message(mismatches: list[TableMismatch], source: str, target: str) -> str:
    details = "; ".join(
        f"{m.name}: {m.source_rows} rows, hash {m.source_hash[:12]} in the source, "
        f"{m.target_rows} rows, hash {m.target_hash[:12]} read back"
        for m in mismatches
    )
    return (
        f"the copy in {target} does not match its source {source} ({details}). It was rolled "
        "back: nothing was committed to the target, and the source is untouched. This is a "
        "bug in ftm or a fault of the target; please report it with this message."
    )


def _move_sequences_past_ids(dst: Connection, tables: Sequence[sa.Table]) -> None:
    """PostgreSQL hands out ids from sequences the copied rows did not advance."""
    if dst.dialect.name != "postgresql":
        return
    quote = dst.dialect.identifier_preparer.quote
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        dst.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE((SELECT MAX({quote(column.name)}) FROM {quote(table.name)}), 0) + 1, "
                "false)"
            ),
            {"table": table.name, "column": column.name},
        )


def _same_database(a: str, b: str) -> bool:
    try:
        first, second = make_url(a), make_url(b)
    except ArgumentError:
        return a == b
    if first.get_backend_name() == second.get_backend_name() == "sqlite":
        return (
            bool(first.database and second.database)
            and Path(first.database or "").resolve() == Path(second.database or "").resolve()
        )
    return first.set(drivername=first.get_backend_name()) == second.set(
        drivername=second.get_backend_name()
    )


def _reason(exc: DBAPIError, *urls: str) -> str:
    """The driver's first line, no password of either URL in it."""
    reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
    for url in urls:
        try:
            password = make_url(url).password
        except ArgumentError:
            password = None
        if password:
            reason = reason.replace(str(password), "***")
    return mask_passwords(reason)
