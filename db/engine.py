"""Engine and session set-up.

SQLite is tuned for several writers (the TUI, `ftm watch`, training workers) at once:
WAL mode so readers never block writers, a busy timeout so a writer waits rather than
failing, foreign keys on, and write transactions that take the write lock at BEGIN
(``BEGIN IMMEDIATE``). The last matters: a deferred transaction that reads and then
writes cannot wait for the lock when another writer got in first, and SQLite answers
"database is locked" at once; an immediate one waits out the busy timeout instead.

PostgreSQL (READ COMMITTED) does not serialise a read-then-write: two pollers could both
read "not claimed yet" and both claim (send a create twice, record a status twice). Every
ftm write transaction there takes one transaction-scoped advisory lock at BEGIN, the
writer lock, so write transactions queue exactly as on SQLite and each one's reads see
every write committed before it (READ COMMITTED reads afresh at each statement). This
makes every read-decide-write in app/ correct on both databases at once, the ones listed
in the lead's brief and any added later, instead of a row lock at each site; the price is
that writers do not overlap, as on SQLite (write transactions are short, no network calls
inside). Readers never take it. A wait for it gives up after the same busy timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

BUSY_TIMEOUT_MS = 30_000
WRITER_OPTION = "ftm_writer"
"""Execution option marking a write transaction: it takes the database's writer lock."""
WRITER_LOCK_KEY = 0x66_74_6D_77  # "ftmw": advisory locks are per database, so one key


def make_engine(url: str, *, tune: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """Create an engine for any SQLAlchemy URL; SQLite and PostgreSQL get the concurrency
    set-up (``busy_timeout_ms``: how long a writer waits for the writer lock).

    ``tune=False`` leaves SQLite's connections as they come: nothing is written on
    connect (switching to WAL rewrites the file's header), so a database can be looked at
    before ftm decides to use it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(url, busy_timeout_ms)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
    )
    if not tune:
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        immediate = conn.get_execution_options().get(WRITER_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***``: what may be written to files and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(a database URL that does not parse)"


def _postgresql_engine(url: str, busy_timeout_ms: int) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Any lock wait (the writer lock's above all) gives up after the busy timeout, as
        # on SQLite. Set once per connection, not per transaction (a round trip saved on
        # every write), and committed: a SET whose transaction rolls back is undone.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        dbapi_connection.commit()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get(WRITER_OPTION, False):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")

    return engine


def writer(engine: Engine) -> Engine:
    """``engine`` for write transactions: each takes the writer lock at BEGIN (see above)."""
    return engine.execution_options(**{WRITER_OPTION: True})


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading. Objects stay usable after it closes."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A short write transaction: committed on success, rolled back on error.

    It holds the writer lock from BEGIN (SQLite's write lock, PostgreSQL's advisory
    lock), so concurrent writers queue on the busy timeout instead of failing, and a
    read-decide-write inside is never interleaved with another writer's. Keep the body
    short: no network calls inside.
    """
    bind = writer(engine)
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
