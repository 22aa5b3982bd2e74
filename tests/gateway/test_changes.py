"""The gateway's change signal (SQLite's data_version, PostgreSQL's snapshot) on a
connection of its own: a commit by another connection moves it, nothing else does, and a
lost connection (a server restart) counts as a change and is replaced, never an error on
every request after."""

from __future__ import annotations

from app.database import get_engine
from app.gateway import changes, keys


def test_a_commit_elsewhere_moves_it_and_a_lost_connection_is_replaced() -> None:
    engine = get_engine()
    version = changes.for_engine(engine)
    assert version is not None  # both databases ftm runs on have a signal
    try:
        assert version.changed()  # the first call: nothing known yet
        assert not version.changed()
        keys.create(engine, "first")  # a commit on another connection
        assert version.changed() and not version.changed()

        version._connection.driver_connection.close()  # the server dropped it
        assert version.changed()  # unknown: read afresh
        assert not version.changed()  # a new connection, nothing committed since
        keys.create(engine, "second")
        assert version.changed()
    finally:
        version.close()
