"""The README's test command is the one CI runs."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.no_database


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(python3 -m venv[^\n]*)\n```", text)


def test_readme_has_a_run_and_a_test_command():
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith(".venv/bin/ftm")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_the_test_command_runs_both_backends_and_ci_installs_postgresql():
    command = _readme_commands()[1]
    assert "pytest --db sqlite &&" in command and command.endswith("pytest --db postgresql")
    assert "apt-get install -y postgresql" in (REPO_ROOT / ".ci" / "run").read_text()
