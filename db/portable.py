"""SQL that means the same on every database ftm runs on (SQLite, PostgreSQL).

One place for what the dialects spell differently, so the rest of the code never asks
which database it is on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa

BUSY_SQLSTATES = frozenset({"55P03", "40P01"})
"""PostgreSQL's lock_not_available (the writer lock's wait ran out) and deadlock_detected."""


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` says another writer held the database too long: SQLite's
    "database is locked", PostgreSQL's lock timeout (or a deadlock). Trying again later is
    the answer; the error is the database's, raw or wrapped by SQLAlchemy."""
    inner = getattr(error, "orig", None) or error
    if isinstance(inner, sqlite3.OperationalError):
        return "database is locked" in str(inner).lower()
    return getattr(inner, "sqlstate", None) in BUSY_SQLSTATES


def insert_ignoring(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], *, key: str) -> set:
    """Insert ``rows``, skipping those whose ``key`` (a unique column) is already stored,
    also by a writer racing this one; returns the keys of the rows inserted.

    SQLite and PostgreSQL: one ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key``,
    atomic against concurrent writers. Other databases: look the keys up first; the
    unique constraint still refuses a duplicate that raced in (an IntegrityError).
    """
    if not rows:
        return set()
    column = table.c[key]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=[key]).returning(column)
        return set(conn.scalars(statement, list(rows)))
    wanted = [r[key] for r in rows]
    known = set(conn.scalars(sa.select(column).where(column.in_(wanted))))
    fresh = [r for r in rows if r[key] not in known]
    if fresh:
        conn.execute(sa.insert(table), fresh)
    return {r[key] for r in fresh}
