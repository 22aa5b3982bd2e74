"""Engine and session set-up.

SQLite is tuned for several writers (the TUI, `ftm watch`, training workers) at once:
WAL mode so readers never block writers, a busy timeout so a writer waits rather than
failing, foreign keys on, and write transactions that take the write lock at BEGIN
(``BEGIN IMMEDIATE``). The last matters: a deferred transaction that reads and then
writes cannot wait for the lock when another writer got in first, and SQLite answers
"database is locked" at once; an immediate one waits out the busy timeout instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, tune: bool = True) -> Engine:
    """Create an engine for any SQLAlchemy URL; SQLite gets the concurrency set-up.

    ``tune=False`` leaves SQLite's connections as they come: nothing is written on
    connect (switching to WAL rewrites the file's header), so a database can be looked at
    before ftm decides to use it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )
    if not tune:
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading. Objects stay usable after it closes."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A short write transaction: committed on success, rolled back on error.

    On SQLite it holds the write lock from BEGIN, so concurrent writers queue on the busy
    timeout instead of failing. Keep the body short: no network calls inside.
    """
    bind = engine.execution_options(sqlite_immediate=True)
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def serialize_writers(session: Session, key: str) -> None:
    """Make this write transaction wait for any other that passed the same ``key``, and
    hold them off until it ends: a read-then-write (read the current row, then insert or
    update it) is then never interleaved with another's.

    SQLite needs nothing more: `write_session` holds the database's write lock from BEGIN.
    PostgreSQL reads without locking and cannot lock a row that is not there yet, so it
    takes a transaction-level advisory lock on the key's hash, released at commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
