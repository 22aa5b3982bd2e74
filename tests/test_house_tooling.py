"""House tooling is part of the suite: the tree is ruff-formatted and providers/ and db/
type-check. A formatting slip or a type error fails CI like any other broken claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import background_checks

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=280
    )


def test_tree_is_ruff_formatted() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, (
        "files not formatted (run `ruff format .`):\n" + result.stdout + result.stderr
    )


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_providers_and_db_type_check() -> None:
    # `files` in pyproject's [tool.mypy] names the checked packages. Started in the
    # background when the session began (tests/background_checks.py); same command.
    result = background_checks.result("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
