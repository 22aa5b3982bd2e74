"""A failed worker (a provider refusing, a bug) shows an error; the app keeps running."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from textual import work
from textual.widgets import Static

from app.tui.app import create_app
from app.tui.errors import ErrorScreen, describe_error
from providers.errors import ConfigurationError, ProviderError
from tests.conftest import REPO_ROOT
from tests.tui.helpers import settle


class _Failing(Static):
    @work(thread=True, exit_on_error=False, group="test")
    def call_provider(self, error: BaseException) -> None:
        raise error


async def _run_failing(error: BaseException):
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        widget = _Failing("x")
        await app.query_one("#datasets-view").mount(widget)
        widget.call_provider(error)
        await settle(pilot)
        notes = [(n.title, n.message, n.severity) for n in app._notifications]
        screen = app.screen
        # the app still answers keys after the failure
        await pilot.press("d")
        assert app.is_running
        return notes, screen


@pytest.mark.expects_tui_error
async def test_provider_error_in_a_widget_worker_becomes_an_error_notification():
    notes, screen = await _run_failing(
        ProviderError("fine-tuning is not available for this organization", code="403")
    )
    assert not isinstance(screen, ErrorScreen)
    assert len(notes) == 1
    title, message, severity = notes[0]
    assert severity == "error"
    assert "403" in title and "call provider" in title
    assert "not available for this organization" in message


@pytest.mark.expects_tui_error
async def test_missing_api_key_says_what_to_do():
    notes, _ = await _run_failing(
        ConfigurationError("no OpenAI API key: set OPENAI_API_KEY or openai.api_key_command")
    )
    assert "OPENAI_API_KEY" in notes[0][1]


@pytest.mark.expects_tui_error
async def test_unexpected_error_opens_a_modal_without_traceback_and_closes():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        widget = _Failing("x")
        await app.query_one("#datasets-view").mount(widget)
        widget.call_provider(ZeroDivisionError("division by zero"))
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert "ZeroDivisionError" in app.screen.error_title
        assert "Traceback" not in app.screen.error_message
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorScreen)
        assert app.is_running


def test_describe_error_messages():
    locked = sqlite3.OperationalError("database is locked")
    assert describe_error(locked).title == "Database busy"
    assert describe_error(locked).expected
    retry = describe_error(ProviderError("rate limited", code="429", retryable=True))
    assert "try again" in retry.message and retry.expected
    assert describe_error(ValueError("epochs: must be > 0")).message == "epochs: must be > 0"
    assert describe_error(KeyError("x")).expected  # LookupError: user-facing


def _work_decorators(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "work":
                    yield node.name, deco
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "run_worker":
            yield "run_worker", node


def test_every_tui_worker_reports_errors_instead_of_exiting_the_app():
    offenders = []
    for path in sorted((REPO_ROOT / "app" / "tui").rglob("*.py")):
        for name, call in _work_decorators(path):
            flags = {k.arg: k.value for k in call.keywords}
            value = flags.get("exit_on_error")
            if not (isinstance(value, ast.Constant) and value.value is False):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno} {name}")
    assert not offenders, "workers that would crash the app on error: " + ", ".join(offenders)


GUARDED = """
import pytest
from textual.app import App

from app.tui.errors import ErrorScreen
from tests.tui_errors import tui_errors_fail_the_test  # noqa: F401


class Noisy(App):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def on_mount(self):
        if self.how == "notify":
            self.notify("quota exceeded", title="Provider error (429)", severity="error")
        elif self.how == "screen":
            self.push_screen(ErrorScreen("Unexpected error: KeyError", "boom"))
        else:
            self.notify("saved", severity="information")


@pytest.mark.parametrize("how", ["notify", "screen", "quiet"])
async def test_unmarked(how):
    async with Noisy(how).run_test() as pilot:
        await pilot.pause()


@pytest.mark.expects_tui_error
async def test_marked():
    async with Noisy("notify").run_test() as pilot:
        await pilot.pause()
"""


def test_an_error_shown_behind_a_tests_back_fails_it(tmp_path):
    """The guard of tests/tui_errors.py, run on a small suite of its own: an unmarked test
    whose app shows an error notification or an error screen fails with its text; a quiet
    one and a marked one pass (each of the four runs its test body to the end)."""
    (tmp_path / "test_guarded.py").write_text(GUARDED)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FTM_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "markers=expects_tui_error",
            "test_guarded.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # The guard fails the test at teardown, once the app has closed: reported as an error.
    assert "4 passed, 2 errors" in out, out
    assert "ERROR test_guarded.py::test_unmarked[notify]" in out
    assert "ERROR test_guarded.py::test_unmarked[screen]" in out
    assert "error notification: Provider error (429): quota exceeded" in out
    assert "error screen: Unexpected error: KeyError: boom" in out
