"""Every test runs against its own FTM_HOME: its own database, config and job dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import database
from tests.tui_errors import tui_errors_fail_the_test  # noqa: F401  (autouse, every test)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Official API specs vendored into the repository (tests never read outside it).
SPECS_DIR = REPO_ROOT / "tests" / "specs"


# The type check (tests/test_house_tooling.py) runs on the core the suite leaves idle.
TYPE_CHECK_TEST = "test_house_tooling.py::test_providers_and_db_type_check"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("FTM_TEST_DB", "sqlite"),
        help="the database every test's ftm uses (default: sqlite, or $FTM_TEST_DB)",
    )


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest):
    """One real PostgreSQL server for the whole session, started on first use."""
    from tests.postgres import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests import background_checks

    if any(item.nodeid.endswith(TYPE_CHECK_TEST) for item in items):
        background_checks.start("mypy")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests import background_checks

    background_checks.stop_all()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This test's own database: a file in its FTM_HOME, or a fresh PostgreSQL database."""
    if request.config.getoption("--db") != "postgresql":
        yield f"sqlite:///{tmp_path / 'ftm-home' / 'ftm.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    database.reset()
    server.drop_database(url)


@pytest.fixture(autouse=True)
def ftm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Path]:
    home = tmp_path / "ftm-home"
    monkeypatch.setenv("FTM_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("FTM_") and name not in ("FTM_HOME", "FTM_TEST_DB"):
            monkeypatch.delenv(name)
    if not database_url.startswith("sqlite"):
        monkeypatch.setenv("FTM_DATABASE_URL", database_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    database.reset()
    yield home
    database.reset()
