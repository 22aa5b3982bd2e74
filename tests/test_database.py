"""The schema: migrations build it from blank, match the models, and SQLite is tuned."""

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


def test_migrates_a_blank_database(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert {"datasets", "jobs", "job_events", "metric_points", "promotions"} <= tables


def test_migrations_match_the_models(tmp_path):
    """A model change without a migration fails here."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_downgrade_to_blank_and_up_again(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert "jobs" not in sa.inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "jobs" in sa.inspect(engine).get_table_names()


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


def test_a_database_from_a_newer_ftm_is_refused_and_left_as_it_was(ftm_home):
    engine = get_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    database.reset()
    with pytest.raises(DatabaseUnusable, match="written by a newer ftm"):
        get_engine()
    probe = make_engine(f"sqlite:///{ftm_home / 'ftm.db'}")
    assert migrate.current_revision(probe) == "from_the_future"
    probe.dispose()


def test_an_older_database_is_still_upgraded(ftm_home):
    url = f"sqlite:///{ftm_home / 'ftm.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    engine.dispose()
    assert "jobs" in sa.inspect(get_engine()).get_table_names()


def test_password_never_in_the_message(ftm_home, monkeypatch):
    monkeypatch.setenv("FTM_DATABASE_URL", "postgresql+nosuchdriver://bob:hunter2@h/db")
    database.reset()
    with pytest.raises(DatabaseUnusable) as caught:
        get_engine()
    assert "hunter2" not in str(caught.value)
    assert "bob:***@h/db" in str(caught.value)
