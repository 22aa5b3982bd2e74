"""The test suite's two passes: the marker that keeps a test out of the PostgreSQL pass
cannot lie, and the session's PostgreSQL server never outlives the session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import postgres
from tests.conftest import REPO_ROOT

pytest_plugins = ["pytester"]

INNER_TESTS = """
    import os
    import sqlite3

    import pytest

    from app import database


    @pytest.mark.no_database
    def test_opens_it_through_ftm():
        database.get_engine()


    @pytest.mark.no_database
    def test_creates_the_file_as_another_process_would():
        os.makedirs(os.environ["FTM_HOME"])
        sqlite3.connect(os.path.join(os.environ["FTM_HOME"], "ftm.db")).close()


    @pytest.mark.no_database
    def test_honest():
        assert database.masked_url("sqlite://") == "sqlite://"


    @pytest.mark.sqlite_only
    def test_sqlite_fact():
        pass


    def test_uses_the_database():
        pass
"""
# In process (a second interpreter costs seconds). Textual's snapshot plugin keeps one
# temporary directory per process and would lose it to the inner session; the inner
# session has no pyproject.toml, so it is told what pytest-asyncio would warn about.
INNER_OPTIONS = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:textual-snapshot",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A tiny suite under this repository's conftest."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403")
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    return pytester


# Not no_database: the inner session opens a database in this very process.
@pytest.mark.sqlite_only
def test_a_no_database_test_that_opens_a_database_fails_saying_so(inner: pytest.Pytester):
    result = inner.runpytest_inprocess(*INNER_OPTIONS, "--db", "sqlite")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_opens_it_through_ftm*",
            "*marked no_database but used a database (sqlite:///*remove the marker*",
            "*ERROR at teardown of test_creates_the_file_as_another_process_would*",
            "*marked no_database but used a database (*ftm.db was created)*remove the marker*",
        ]
    )


@pytest.mark.no_database
def test_the_postgresql_pass_leaves_out_the_no_database_and_sqlite_only_tests(
    inner: pytest.Pytester,
):
    result = inner.runpytest_inprocess(*INNER_OPTIONS, "--db", "postgresql", "--collect-only", "-q")
    result.assert_outcomes(deselected=4)
    result.stdout.fnmatch_lines(["test_inner.py::test_uses_the_database"])


@pytest.mark.no_database
def test_the_server_stops_when_the_session_is_killed(tmp_path):
    """A CI timeout's SIGKILL runs no teardown: the server must stop by itself."""
    pids = tmp_path / "pids"
    session = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, pathlib, signal, sys\n"
            "from tests.postgres import PostgresServer\n"
            "server = PostgresServer.start(template=False)\n"
            "pathlib.Path(sys.argv[1]).write_text(f'{server.process.pid} {server.root}')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(pids),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert session.wait(timeout=120) == -9
    pid, root = pids.read_text().split(" ", 1)
    postmaster = int(pid)
    deadline = time.monotonic() + 30
    while _alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = _alive(postmaster)
    if survived:  # leave no stray server behind, even when failing
        os.kill(postmaster, signal.SIGQUIT)
        shutil.rmtree(root, ignore_errors=True)
    assert not survived, f"the PostgreSQL server (pid {postmaster}) outlived its session"
    # Its directory, which the killed session could not delete, goes once it is old enough
    # not to be a session's being set up: at the start of a later session.
    postgres._remove_stopped_leftovers()
    assert Path(root).is_dir()
    aged = time.time() - postgres.LEFTOVER_AGE_S - 1
    os.utime(root, (aged, aged))
    postgres._remove_stopped_leftovers()
    assert not Path(root).exists()


def _alive(pid: int) -> bool:
    try:
        state = (open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split() or ["?"])[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has stopped; only its (killed) parent could reap it
