"""Every test runs against its own FTM_HOME: its own database, config and job dirs.

Two backends: ``--db sqlite`` (the default, or $FTM_TEST_DB) gives each test a file in its
FTM_HOME; ``--db postgresql`` gives it a fresh database on a real PostgreSQL server the
session starts (tests/postgres.py). The README's test command runs both passes. Tests
that never touch a database are marked ``no_database`` and run in the SQLite pass only;
the marker cannot lie: a ``no_database`` test that opens a database fails, saying so.
Tests of SQLite-only facts (WAL mode, the file's bytes) are marked ``sqlite_only``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import database
from tests.tui_errors import tui_errors_fail_the_test  # noqa: F401  (autouse, every test)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Official API specs vendored into the repository (tests never read outside it).
SPECS_DIR = REPO_ROOT / "tests" / "specs"

# Markers that keep a test out of the PostgreSQL pass (registered in pyproject.toml).
NO_DATABASE = "no_database"
SQLITE_ONLY = "sqlite_only"

# The type check (tests/test_house_tooling.py) runs on the core the suite leaves idle.
TYPE_CHECK_TEST = "test_house_tooling.py::test_providers_and_db_type_check"

# What the PostgreSQL databases cost this session: [count, seconds creating + dropping].
_database_cost = [0, 0.0]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("FTM_TEST_DB", "sqlite"),
        help="the database every test's ftm uses (default: sqlite, or $FTM_TEST_DB)",
    )


def _on_postgresql(config: pytest.Config) -> bool:
    return config.getoption("--db") == "postgresql"


def pytest_report_header(config: pytest.Config) -> str:
    if _on_postgresql(config):
        return (
            f"database: postgresql (tests marked {NO_DATABASE} or {SQLITE_ONLY} are "
            "deselected: the SQLite pass runs them)"
        )
    return "database: sqlite"


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest):
    """One real PostgreSQL server for the whole session, started on first use."""
    from tests.postgres import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests import background_checks

    if _on_postgresql(config):
        kept, left_out = [], []
        for item in items:
            skip = item.get_closest_marker(NO_DATABASE) or item.get_closest_marker(SQLITE_ONLY)
            (left_out if skip else kept).append(item)
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = kept

    if any(item.nodeid.endswith(TYPE_CHECK_TEST) for item in items):
        background_checks.start("mypy")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests import background_checks

    background_checks.stop_all()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    count, seconds = _database_cost
    if count:
        terminalreporter.write_line(
            f"PostgreSQL: {count} test databases created and dropped in {seconds:.1f} s "
            f"({seconds / count * 1000:.0f} ms each)"
        )


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This test's own database: a file in its FTM_HOME, or a fresh PostgreSQL database."""
    if not _on_postgresql(request.config):
        yield f"sqlite:///{tmp_path / 'ftm-home' / 'ftm.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    started = time.perf_counter()
    url = server.create_database()
    _database_cost[1] += time.perf_counter() - started
    yield url
    database.reset()
    started = time.perf_counter()
    server.drop_database(url)
    _database_cost[0] += 1
    _database_cost[1] += time.perf_counter() - started


@pytest.fixture(scope="module")
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A database a module's tests share (seeded once, read by each): a fresh PostgreSQL
    database on that pass, None on SQLite's (ftm's default, the file in the home)."""
    if not _on_postgresql(request.config):
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    database.reset()
    server.drop_database(url)


@pytest.fixture
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second database, empty (no schema at all), on this pass's backend."""
    if not _on_postgresql(request.config):
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database(migrated=False)
    yield url
    database.reset()
    server.drop_database(url)


@pytest.fixture(autouse=True)
def ftm_home(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> Iterator[Path]:
    home = tmp_path / "ftm-home"
    monkeypatch.setenv("FTM_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("FTM_") and name not in ("FTM_HOME", "FTM_TEST_DB"):
            monkeypatch.delenv(name)
    if not database_url.startswith("sqlite"):
        monkeypatch.setenv("FTM_DATABASE_URL", database_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    database.reset()
    opened = _watch_databases_opened(monkeypatch)
    yield home
    database.reset()
    if request.node.get_closest_marker(NO_DATABASE):
        _fail_if_a_database_was_opened(home, opened)


def _watch_databases_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs this process opens through app.database during the test."""
    opened: list[str] = []
    open_database = database._open

    def recording_open(url: str):
        opened.append(url)
        return open_database(url)

    monkeypatch.setattr(database, "_open", recording_open)
    return opened


def _fail_if_a_database_was_opened(home: Path, opened: list[str]) -> None:
    # The file catches subprocesses too (the CLI, workers, servers): they all open it.
    evidence = [database.masked_url(url) for url in opened]
    if (home / "ftm.db").exists():
        evidence.append(f"{home / 'ftm.db'} was created")
    if evidence:
        pytest.fail(
            f"this test is marked {NO_DATABASE} but used a database ({'; '.join(evidence)}): "
            f"remove the marker so that it runs on PostgreSQL too.",
            pytrace=False,
        )
