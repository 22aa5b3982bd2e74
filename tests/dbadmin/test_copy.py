"""`ftm db copy`: SQLite to PostgreSQL and back with equal content hashes, ids kept and
sequences moved on; refusals; a corrupted copy caught and rolled back."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import SQLModel, select

from app import database
from app.cli.main import cli
from app.dbadmin import DatabaseAdminError
from app.dbadmin import copy as copy_module
from app.dbadmin.copy import CopyMismatch, copy_database, table_hashes
from app.dbadmin.status import database_status
from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import Job, JobEvent, MetricPoint
from tests.dbadmin.filled import fill

# The PostgreSQL session answers in a zone far from UTC: a naive time written to it, or an
# aware one read back without converting, shows as a different content hash.
FAR_ZONE = "?options=-c%20TimeZone%3DAmerica%2FSt_Johns"


def filled_sqlite(path: Path, big_rows: int = 7) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    fill(engine, big_rows=big_rows)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """A filled SQLite database the tests only read."""
    return filled_sqlite(tmp_path_factory.mktemp("source") / "source.db")


def hashes(report) -> list[tuple[str, int, str]]:
    return [(t.name, t.rows, t.content_hash) for t in report.tables]


def hashes_of(url: str) -> list[tuple[str, int, str]]:
    engine = make_engine(url, tune=False)
    try:
        with engine.connect() as connection:
            found = table_hashes(connection, SQLModel.metadata.sorted_tables)
    finally:
        engine.dispose()
    return [(t.name, t.rows, t.content_hash) for t in found]


def test_sqlite_to_postgresql_and_back_keeps_every_row_and_hash(tmp_path, postgres_server, source):
    blank = postgres_server.create_database(migrated=False)
    middle = blank + FAR_ZONE
    back = f"sqlite:///{tmp_path / 'back.db'}"
    seen: list[tuple[str, int, int]] = []
    try:
        there = copy_database(source, middle, batch_rows=2, progress=lambda *p: seen.append(p))
        again = copy_database(middle, back, batch_rows=3)

        # hashed from SQLite, then from PostgreSQL, then read back from SQLite
        assert hashes(there) == hashes(again) == hashes_of(back) == hashes_of(source)
        assert {t.rows for t in there.tables if t.name != "metric_points"} == {3}
        # streamed in batches: 7 rows, 2 at a time
        assert [p for p in seen if p[0] == "metric_points"] == [
            ("metric_points", n, 7) for n in (2, 4, 6, 7)
        ]
        assert database_status(back).current == migrate.head_revision()

        # ids kept, and PostgreSQL's sequences moved past them: a new job gets id 4
        engine = database.engine_for(middle)
        with write_session(engine) as session:
            job = Job(name="new", provider="local", base_model="m", method="lora")
            session.add(job)
        assert job.id == 4
        with read_session(engine) as session:
            assert session.scalars(select(Job.id).order_by(Job.id)).all() == [1, 2, 3, 4]

        # a target that holds rows is refused, and is not touched
        with pytest.raises(DatabaseAdminError, match="is not empty"):
            copy_database(source, middle)
        assert database_status(middle).rows["jobs"] == 4
    finally:
        database.reset()
        postgres_server.drop_database(blank)


# (what goes wrong, in which table, in the row with which id)
CORRUPTIONS = [
    ("json null became SQL NULL", Job, 2),  # the filler's row 2 holds JSON null
    ("a float moved by one ulp", MetricPoint, 5),
    ("a microsecond later", JobEvent, 3),
]


def corrupt(values: dict, what: str) -> None:
    if what == "json null became SQL NULL":
        assert values["hyperparameters"] is sa.JSON.NULL
        values["hyperparameters"] = None
    elif what == "a float moved by one ulp":
        values["train_loss"] = math.nextafter(values["train_loss"], 10.0)
    else:
        values["created_at"] += timedelta(microseconds=1)


@pytest.mark.parametrize(("what", "model", "row_id"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_copy_that_differs_from_its_source_is_rolled_back(
    tmp_path, monkeypatch, source, what, model, row_id
):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    before = hashes_of(source)
    insertable = copy_module._insertable
    columns_of_model = {c.name for c in model.__table__.columns}

    def corrupting(row, columns):
        values = insertable(row, columns)
        if set(values) == columns_of_model and values["id"] == row_id:
            corrupt(values, what)
        return values

    monkeypatch.setattr(copy_module, "_insertable", corrupting)
    with pytest.raises(CopyMismatch) as raised:
        copy_database(source, target, batch_rows=2)

    assert [m.name for m in raised.value.mismatches] == [model.__tablename__]
    assert "rolled back" in str(raised.value)
    assert all(n == 0 for n in database_status(target).rows.values())  # nothing committed
    assert hashes_of(source) == before  # the source is as it was


def test_a_source_behind_the_newest_schema_is_refused_with_what_to_do(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0004_deployments_gateway")
    engine.dispose()
    result = CliRunner().invoke(
        cli, ["db", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'new.db'}"]
    )
    assert result.exit_code == 1
    assert "not this ftm's newest" in result.output and "ftm db upgrade" in result.output
    assert database_status(url).current == "0004_deployments_gateway"  # left as it was


def test_the_cli_copies_the_configured_database_and_reports_hashes(tmp_path, postgres_server):
    blank = postgres_server.create_database(migrated=False)
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["keys", "create", "app"]).exit_code == 0
        result = runner.invoke(cli, ["db", "copy", "--to", blank])
        assert result.exit_code == 0, result.output
        assert "Verified" in result.output
        assert [
            line.split()[:2] for line in result.output.splitlines() if "gateway_keys" in line
        ] == [["gateway_keys", "1"]]
        assert postgres_server.password not in result.output
        assert "***" in result.output

        again = runner.invoke(cli, ["db", "copy", "--to", blank])
        assert again.exit_code == 1
        assert "is not empty" in again.output
        assert postgres_server.password not in again.output
    finally:
        database.reset()
        postgres_server.drop_database(blank)
