"""ftm's write transactions take one writer lock on either database (SQLite's write lock,
a PostgreSQL advisory lock): a second writer waits for the first, and one that waited too
long fails with an error every layer knows as "busy" (the TUI says "Database busy")."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from app.database import get_engine
from app.tui.errors import describe_error
from db.engine import make_engine, read_session, write_session
from db.models import Job
from db.portable import is_busy


@pytest.fixture
def url() -> str:
    return str(get_engine().url.render_as_string(hide_password=False))


def test_a_writer_waits_for_the_writer_lock_and_readers_do_not(url) -> None:
    first, second = make_engine(url), make_engine(url)
    order: list[str] = []
    holding, wrote = threading.Event(), threading.Event()

    def other_writer() -> None:
        holding.wait(10)
        with write_session(second) as session:
            session.execute(select(Job.id))  # BEGIN takes the lock: waits for the first
            order.append("second")
        wrote.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    with write_session(first) as session:
        session.execute(select(Job.id))
        holding.set()
        with read_session(second) as reader:  # a reader is never held up
            assert reader.execute(select(Job.id)).all() == []
        assert not wrote.wait(0.3)  # the second writer is still waiting
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    first.dispose()
    second.dispose()


def test_a_writer_that_waits_too_long_fails_busy(url) -> None:
    holder, impatient = make_engine(url), make_engine(url, busy_timeout_ms=200)
    with write_session(holder) as session:
        session.execute(text("SELECT 1"))
        with pytest.raises(Exception) as caught:
            with write_session(impatient) as other:
                other.execute(text("SELECT 1"))
    assert is_busy(caught.value)
    shown = describe_error(caught.value)
    assert shown.title == "Database busy" and shown.expected
    assert not is_busy(ValueError("database is locked"))  # only the database's own error
    holder.dispose()
    impatient.dispose()
