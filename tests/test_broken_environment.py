"""A broken environment ends in one clear line on stderr and exit 2, never a traceback.

Each case runs the real entry point (`python -m app`, what the `ftm` script calls) in a
subprocess against the test's own FTM_HOME, breaks one thing, and checks the line says
what is wrong, where (file and line, setting and its source, URL with the password
masked) and what to do. The TUI path (`ftm` with no command) must say the same line
before the screen is taken over.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import REPO_ROOT

PASSWORD = "s3cret-Pw9"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def line(self) -> str:
        """The one line on stderr (asserts there is exactly one, and no traceback)."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


def ftm(*args: str, without: str = "", **env: str) -> Outcome:
    """Run the real CLI with FTM_HOME (set per test by conftest) and ``env`` on top;
    ``without`` names a module to run it without, as on an install that lacks it."""
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    # A None in sys.modules makes importing it raise ModuleNotFoundError, as if absent.
    entry = (
        [
            "-c",
            f"import runpy, sys; sys.modules[{without!r}] = None; "
            "runpy.run_module('app', run_name='__main__', alter_sys=True)",
        ]
        if without
        else ["-m", "app"]
    )
    done = subprocess.run(
        [sys.executable, *entry, *args],
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,  # the TUI, started by mistake, would wait for keys forever
        cwd=REPO_ROOT,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def broken(*args: str, **env: str) -> str:
    """Run ftm, expect the broken-environment exit, return its one line."""
    outcome = ftm(*args, **env)
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    assert outcome.stdout == ""
    return outcome.line


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    return path


# -- the config file and the settings --------------------------------------------------


def test_toml_syntax_error_names_file_and_line(ftm_home):
    path = write_config(ftm_home, "[openai]\nsandbox = true\n\n[poller]\ninterval_s = \n")
    line = broken("jobs", "list")
    assert f"the config file {path}, line 5" in line
    assert "not valid TOML" in line
    assert "Fix line 5" in line and "FTM_CONFIG" in line


def test_wrong_type_in_config_file_names_setting_and_line(ftm_home):
    path = write_config(ftm_home, '[openai]\nsandbox = true\n[poller]\ninterval_s = "x"\n')
    line = broken("jobs", "list")
    assert "setting poller.interval_s = 'x'" in line
    assert f"from {path}, line 4" in line
    assert "valid number" in line
    assert f"Fix line 4 of {path}" in line


def test_wrong_type_in_environment_names_the_variable(ftm_home):
    # The config file is fine; the environment variable overrides it and is the culprit.
    write_config(ftm_home, "[poller]\ninterval_s = 5\n")
    line = broken("jobs", "list", FTM_POLLER__INTERVAL_S="x")
    assert "setting poller.interval_s = 'x'" in line
    assert "from the environment variable FTM_POLLER__INTERVAL_S" in line
    assert "config.toml" not in line
    assert "Fix or unset FTM_POLLER__INTERVAL_S" in line


def test_home_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = blocker / "ftm"
    line = broken("jobs", "list", FTM_HOME=str(home))
    assert f"cannot create ftm's home directory {home}" in line
    assert "FTM_HOME" in line and "not a directory" in line
    assert "to a directory you can write" in line


def test_home_from_the_config_file_that_cannot_be_created(tmp_path, monkeypatch):
    monkeypatch.delenv("FTM_HOME")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = tmp_path / "ftm.toml"
    config.write_text(f'user = "ann"\nhome = "{blocker}/ftm"\n')
    line = broken("jobs", "list", FTM_CONFIG=str(config))
    assert f"cannot create ftm's home directory {blocker}/ftm (from {config}, line 2)" in line
    assert f"Fix line 2 of {config}: name a directory you can write" in line


def test_config_file_chosen_by_ftm_config_that_does_not_exist(ftm_home, tmp_path):
    missing = tmp_path / "ftm-conf.toml"  # a typo'd path must not mean silent defaults
    line = broken("jobs", "list", FTM_CONFIG=str(missing))
    assert f"the config file {missing} (from the environment variable FTM_CONFIG)" in line
    assert "does not exist" in line and "Point FTM_CONFIG at a TOML file" in line


def test_config_file_that_is_not_utf8(ftm_home):
    ftm_home.mkdir(parents=True)
    (ftm_home / "config.toml").write_bytes(b'[openai]\nsandbox = true\nuser = "Ren\xe9"\n')
    line = broken("jobs", "list")
    assert f"the config file {ftm_home / 'config.toml'}, line 3 is not UTF-8" in line
    assert "Save the file as UTF-8" in line


def test_help_works_in_a_broken_environment(ftm_home):
    write_config(ftm_home, "[poller\n")
    outcome = ftm("jobs", "list", "--help")
    assert outcome.code == 0, outcome.stderr
    assert "Usage: ftm jobs list" in outcome.stdout


# -- the database ----------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_file_that_is_not_a_database(ftm_home):
    ftm_home.mkdir(parents=True)
    db = ftm_home / "ftm.db"
    db.write_bytes(b"these are my notes, not a database\n" * 200)
    before = db.read_bytes()
    line = broken("jobs", "list")
    assert f"the database sqlite:///{db}" in line
    assert f"FTM_HOME={ftm_home}" in line
    assert "is not an SQLite database" in line
    assert "Move the file aside" in line and "FTM_DATABASE_URL" in line
    assert db.read_bytes() == before


def _postgres_driver() -> str:
    """The driver SQLAlchemy uses for a plain postgresql:// URL (psycopg from 2.1,
    psycopg2 before): the tests run ftm without it, as on a base install (the test
    environment has it: the suite's second pass runs on PostgreSQL)."""
    return make_url("postgresql://h/db").get_dialect().driver


PIP_FOR_DRIVER = {
    "psycopg": 'pip install "psycopg[binary]"',
    "psycopg2": 'pip install "psycopg2-binary"',
}


@pytest.mark.no_database
def test_postgres_url_without_its_driver_from_environment(ftm_home):
    driver = _postgres_driver()
    url = f"postgresql://bob:{PASSWORD}@db.example:5432/ftm"
    outcome = ftm("jobs", "list", without=driver, FTM_DATABASE_URL=url)
    assert outcome.code == 2
    line = outcome.line
    assert "postgresql://bob:***@db.example:5432/ftm" in line
    assert PASSWORD not in outcome.stderr + outcome.stdout
    assert "(the environment variable FTM_DATABASE_URL)" in line
    assert f"driver '{driver}'" in line and "not installed" in line
    assert PIP_FOR_DRIVER[driver] in line


@pytest.mark.no_database
def test_postgres_url_without_its_driver_from_config_file(ftm_home):
    driver = _postgres_driver()
    path = write_config(
        ftm_home, f'user = "ann"\ndatabase_url = "postgresql://bob:{PASSWORD}@db.example/ftm"\n'
    )
    outcome = ftm("jobs", "list", without=driver)
    assert outcome.code == 2
    line = outcome.line
    assert f"({path}, line 2)" in line
    assert "postgresql://bob:***@db.example/ftm" in line
    assert PASSWORD not in outcome.stderr + outcome.stdout
    assert PIP_FOR_DRIVER[driver] in line


def test_database_url_that_does_not_parse(ftm_home):
    url = f"postgresql//bob:{PASSWORD}@db.example/ftm"  # the ':' after the scheme is missing
    outcome = ftm("jobs", "list", FTM_DATABASE_URL=url)
    assert outcome.code == 2
    line = outcome.line
    assert "'postgresql//bob:***@db.example/ftm'" in line
    assert PASSWORD not in outcome.stderr + outcome.stdout
    assert "(the environment variable FTM_DATABASE_URL) is not a valid URL" in line
    assert "sqlite:////path/to/ftm.db" in line


def test_database_url_of_an_unknown_kind(ftm_home):
    # The scheme hosting services hand out, which SQLAlchemy no longer accepts.
    outcome = ftm("jobs", "list", FTM_DATABASE_URL=f"postgres://bob:{PASSWORD}@h/ftm")
    assert outcome.code == 2
    line = outcome.line
    assert "postgres://bob:***@h/ftm" in line
    assert "names a kind of database ftm does not know ('postgres')" in line
    assert "Write it as postgresql://" in line
    assert PASSWORD not in outcome.stderr


def _database_from_a_newer_ftm(ftm_home: Path) -> Path:
    """A database made by this ftm, then stamped with a migration it does not know, in
    rollback-journal mode (switching it to WAL would rewrite its header)."""
    assert ftm("jobs", "list").code == 0
    db = ftm_home / "ftm.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.close()
    return db


# SQLite's bytes; tests/test_database.py refuses a newer database on either backend.
@pytest.mark.sqlite_only
def test_database_from_a_newer_ftm_is_refused_untouched(ftm_home):
    db = _database_from_a_newer_ftm(ftm_home)
    before = db.read_bytes()
    line = broken("jobs", "list")
    assert f"the database sqlite:///{db}" in line
    assert "written by a newer ftm" in line
    assert "'0099_from_the_future' is unknown to this version" in line
    assert "left untouched" in line and "FTM_DATABASE_URL" in line
    assert db.read_bytes() == before
    assert not Path(f"{db}-wal").exists()


# -- the TUI: the same line, before the screen is taken over ---------------------------


@pytest.mark.parametrize(
    "case", ["toml", "setting", pytest.param("newer-db", marks=pytest.mark.sqlite_only), "url"]
)
def test_tui_start_says_the_same_line(ftm_home, case):
    env: dict[str, str] = {}
    if case == "toml":
        write_config(ftm_home, "[tui\n")
    elif case == "setting":
        env["FTM_POLLER__CONCURRENCY"] = "many"
    elif case == "newer-db":
        db = _database_from_a_newer_ftm(ftm_home)
        before = db.read_bytes()
    else:
        env["FTM_DATABASE_URL"] = f"postgresql//bob:{PASSWORD}@db.example/ftm"
    tui_line = broken(**env)
    assert broken("jobs", "list", **env) == tui_line
    if case == "newer-db":
        assert "written by a newer ftm" in tui_line
        assert db.read_bytes() == before
    if case == "url":
        assert PASSWORD not in tui_line
