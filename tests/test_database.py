"""The schema: migrations build it from blank, match the models (on either backend), and
SQLite is tuned."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import db.models  # noqa: F401
from app import database
from app.database import DatabaseUnusable, get_engine
from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import Job


def test_migrates_a_blank_database(blank_database_url):
    engine = make_engine(blank_database_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"datasets", "jobs", "job_events", "metric_points", "promotions"} <= tables


def test_migrations_match_the_models(blank_database_url):
    """A model change without a migration fails here; so does a type or index that one
    backend builds differently from the models."""
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_downgrade_to_blank_and_up_again(blank_database_url):
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert "jobs" not in sa.inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "jobs" in sa.inspect(engine).get_table_names()


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_with_foreign_keys(ftm_home):
    engine = get_engine()
    assert str(ftm_home) in str(engine.url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_write_session_commits_and_rolls_back():
    engine = get_engine()
    with write_session(engine) as s:
        s.add(Job(name="a", provider="openai", base_model="m", method="supervised"))
    try:
        with write_session(engine) as s:
            s.add(Job(name="b", provider="openai", base_model="m", method="supervised"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with read_session(engine) as s:
        assert [j.name for j in s.exec(sa.select(Job)).scalars()] == ["a"]


def test_foreign_keys_are_enforced():
    engine = get_engine()
    from db.models import JobEvent

    try:
        with write_session(engine) as s:
            s.add(
                JobEvent(
                    job_id=999, provider_event_id="x", created_at=db.models.utcnow(), message="m"
                )
            )
    except sa.exc.IntegrityError:
        return
    raise AssertionError("an event for a missing job was accepted")


def test_a_database_from_a_newer_ftm_is_refused_and_left_as_it_was(database_url):
    """On either backend (tests/test_broken_environment.py checks SQLite's file bytes)."""
    engine = get_engine()
    with write_session(engine) as s:
        s.add(Job(name="kept", provider="openai", base_model="m", method="supervised"))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    database.reset()
    with pytest.raises(DatabaseUnusable, match="written by a newer ftm"):
        get_engine()
    probe = make_engine(database_url, tune=False)
    assert migrate.current_revision(probe) == "from_the_future"
    with probe.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM jobs")).scalars().all() == ["kept"]
    probe.dispose()


def test_an_older_database_is_still_upgraded(blank_database_url, monkeypatch):
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    engine.dispose()
    monkeypatch.setenv("FTM_DATABASE_URL", blank_database_url)
    database.reset()
    assert "jobs" in sa.inspect(get_engine()).get_table_names()


def test_password_never_in_the_message(ftm_home, monkeypatch):
    monkeypatch.setenv("FTM_DATABASE_URL", "postgresql+nosuchdriver://bob:hunter2@h/db")
    database.reset()
    with pytest.raises(DatabaseUnusable) as caught:
        get_engine()
    assert "hunter2" not in str(caught.value)
    assert "bob:***@h/db" in str(caught.value)
