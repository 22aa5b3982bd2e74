"""`ftm db status` looks without migrating; `ftm db upgrade` applies what it listed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from db import migrate
from db.engine import make_engine


@pytest.fixture
def blank_url(request, ftm_home, monkeypatch):
    """This test's configured database, blank (no schema yet), on the session's backend."""
    if request.config.getoption("--db") != "postgresql":
        yield f"sqlite:///{ftm_home / 'ftm.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database(migrated=False)
    monkeypatch.setenv("FTM_DATABASE_URL", url)
    database.reset()
    yield url
    database.reset()
    server.drop_database(url)


def test_status_lists_pending_migrations_without_applying_them_and_upgrade_applies_them(
    blank_url,
):
    engine = make_engine(blank_url)
    migrate.upgrade(engine, "0003_throughput_world_size_flops_facts")
    engine.dispose()
    runner = CliRunner()
    newer = [rev for rev, _ in migrate.pending_revisions("0003_throughput_world_size_flops_facts")]

    shown = runner.invoke(cli, ["db", "status", "--json"])
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert status["current"] == "0003_throughput_world_size_flops_facts"
    assert [m["revision"] for m in status["pending"]] == newer
    assert status["backend"] in ("sqlite", "postgresql") and status["size_bytes"] > 0
    assert status["rows"]["jobs"] == 0 and "deployments" not in status["rows"]  # 0004's table
    again = json.loads(runner.invoke(cli, ["db", "status", "--json"]).output)
    assert again["current"] == status["current"]  # looking changed nothing

    upgraded = runner.invoke(cli, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"Applied {len(newer)} migration(s)" in upgraded.output
    assert all(rev in upgraded.output for rev in newer)

    after = runner.invoke(cli, ["db", "status"])
    assert f"revision: {migrate.head_revision()}" in after.output
    assert "pending:  none" in after.output
    assert "up to date" in runner.invoke(cli, ["db", "upgrade"]).output


def test_status_of_a_database_file_not_created_yet_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FTM_DATABASE_URL", f"sqlite:///{tmp_path / 'later' / 'ftm.db'}")
    database.reset()
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code == 0, result.output
    assert "not created yet" in result.output
    assert "0001" in result.output  # every migration pending
    assert not (tmp_path / "later").exists()


def test_a_database_from_a_newer_ftm_is_shown_and_never_upgraded(blank_url):
    engine = make_engine(blank_url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE alembic_version SET version_num = '9999_from_the_future'"
        )
    engine.dispose()
    runner = CliRunner()
    status = json.loads(runner.invoke(cli, ["db", "status", "--json"]).output)
    assert status["newer_than_ftm"] is True and status["pending"] == []
    assert "unknown to this ftm" in runner.invoke(cli, ["db", "status"]).output

    refused = runner.invoke(cli, ["db", "upgrade"])
    assert refused.exit_code == 1 and "left untouched" in refused.output
    again = json.loads(runner.invoke(cli, ["db", "status", "--json"]).output)
    assert again["current"] == "9999_from_the_future"
