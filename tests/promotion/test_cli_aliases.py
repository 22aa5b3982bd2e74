"""One way to name an alias (`--task TASK --alias ALIAS`, README) on `models show`,
`models export`, `promote` and `migrate`; and who a promotion is recorded as."""

from __future__ import annotations

import getpass
import json
import os
import pwd

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.database import get_engine
from app.evaluation.candidates import Candidate, split_example
from app.evaluation.runner import run_eval
from db.engine import read_session
from db.models import Promotion
from tests.evaluation.helpers import EchoLabelProvider, routing_config, routing_examples

LOGIN_VARS = ("LOGNAME", "USER", "LNAME", "USERNAME")


def _ftm(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def _eval(kind: str, model: str, **kw) -> int:
    examples = [split_example(e, i) for i, e in enumerate(routing_examples(6))]
    run = run_eval(
        Candidate(kind, "echo", model, **kw),
        examples,
        routing_config(),
        provider=EchoLabelProvider(),
        engine=get_engine(),
        train_examples=routing_examples(12),
    )
    return run.id


@pytest.fixture
def good_run() -> int:
    _eval("few_shot", "base", k=3)
    return _eval("fine_tuned", "good", base_model="base")


def _promotions() -> list[Promotion]:
    with read_session(get_engine()) as session:
        return list(session.exec(select(Promotion).order_by(Promotion.id)))


def test_promoted_by_the_configured_name(good_run, monkeypatch):
    monkeypatch.setenv("FTM_USER", "grace")
    database.reset()
    result = _ftm("promote", "--task", "routing", "--run", str(good_run))
    assert result.exit_code == 0, result.output
    assert "by grace" in result.output
    assert [p.who for p in _promotions()] == ["grace"]


def test_promoted_by_the_os_user_when_no_name_is_configured(good_run, monkeypatch):
    # No FTM_USER and no login variables (a service, a container): the password database
    # still knows who runs the process; "unknown" is never recorded.
    for name in LOGIN_VARS:
        monkeypatch.delenv(name, raising=False)
    database.reset()
    os_user = pwd.getpwuid(os.getuid()).pw_name
    assert getpass.getuser() == os_user
    result = _ftm("promote", "--task", "routing", "--run", str(good_run))
    assert result.exit_code == 0, result.output
    back = _ftm("promote", "--task", "routing", "--rollback")
    assert back.exit_code != 0  # one holder only: nothing to roll back to
    (row,) = _promotions()
    assert row.who == os_user and row.who != "unknown"


def test_all_four_commands_take_task_and_alias_the_same_way(good_run):
    promoted = _ftm("promote", "--task", "routing", "--alias", "staging", "--run", str(good_run))
    assert promoted.exit_code == 0, promoted.output
    assert "routing/staging -> good" in promoted.output

    for task in (("--task", "routing"), ()):  # the task may be left out: one task has it
        shown = _ftm("models", "show", *task, "--alias", "staging")
        assert shown.exit_code == 0, shown.output
        assert "routing/staging: good" in shown.output
        exported = _ftm("models", "export", *task, "--alias", "staging")
        assert exported.exit_code == 0, exported.output
        assert json.loads(exported.output)["model"] == "good"
        migrated = _ftm(
            "migrate", *task, "--alias", "staging", "--to", "local", "--model", "some-dir"
        )
        # the alias is found the same way; this holder has no training job to re-run
        assert "routing/staging holds good" in migrated.output, migrated.output
        assert "no recorded job" in migrated.output

    # the same default alias everywhere: production
    assert _ftm("promote", "--task", "routing", "--run", str(good_run)).exit_code == 0
    for args in (
        ("models", "show"),
        ("models", "export"),
        ("migrate", "--to", "local", "--model", "d"),
    ):
        result = _ftm(*args, "--task", "routing")
        assert "good" in result.output, (args, result.output)
        assert "staging" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("models", "show"),
        ("models", "export"),
        ("promote", "--run", "1"),
        ("migrate", "--to", "local", "--model", "d"),
    ],
)
def test_an_unknown_alias_without_a_task_is_one_clear_line(args):
    result = _ftm(*args, "--alias", "nosuch")
    assert result.exit_code != 0
    assert "alias 'nosuch' exists in 0 tasks; name one with --task TASK" in result.output
    assert "Traceback" not in result.output
