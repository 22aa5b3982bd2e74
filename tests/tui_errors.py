"""No Pilot test swallows a TUI failure: every error notification and every error screen
an app shows during a test is recorded, and the test fails at teardown with their text,
unless it is marked ``@pytest.mark.expects_tui_error`` (a test that checks an error is
shown). A failed worker reaches the user through exactly these two channels
(`app.tui.errors.report_error`), so a worker that fails behind a test's back fails it.

The fixture is autouse for the whole suite (imported by tests/conftest.py): Pilot tests
live beside their features (tests/datasets, tests/costs, ...), not only under tests/tui.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

MARKER = "expects_tui_error"


@pytest.fixture(autouse=True)
def tui_errors_fail_the_test(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """The errors shown to the user during the test (the list is the fixture's value)."""
    from textual.app import App

    from app.tui.errors import ErrorScreen

    shown: list[str] = []
    notify = App.notify
    error_screen_init = ErrorScreen.__init__

    def recording_notify(self, message, **kwargs):  # App.notify's options are keyword-only
        if kwargs.get("severity") == "error":
            shown.append(f"error notification: {kwargs.get('title', '')}: {message}")
        return notify(self, message, **kwargs)

    def recording_error_screen(self, title: str, message: str) -> None:
        shown.append(f"error screen: {title}: {message}")
        error_screen_init(self, title, message)

    monkeypatch.setattr(App, "notify", recording_notify)
    monkeypatch.setattr(ErrorScreen, "__init__", recording_error_screen)
    yield shown
    if shown and request.node.get_closest_marker(MARKER) is None:
        pytest.fail(
            "the app showed an error the test did not expect (mark the test "
            f"@pytest.mark.{MARKER} if it is meant to):\n" + "\n".join(shown),
            pytrace=False,
        )
