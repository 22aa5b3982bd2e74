"""TUI test fixtures: a fixed date for anything that shows days-until-sunset."""

from __future__ import annotations

import pytest

from app.tui.screens import launch_form
from tests.tui.helpers import FIXED_TODAY


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(launch_form, "today", lambda: FIXED_TODAY)
    return FIXED_TODAY
