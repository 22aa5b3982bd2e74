"""TUI test fixtures: a fixed date for anything that shows days-until-sunset.

An error notification or error screen a test did not expect fails it: the autouse guard
is in tests/tui_errors.py (active for every test, as Pilot tests live beside their
features too); mark a test that checks an error with ``@pytest.mark.expects_tui_error``.
"""

from __future__ import annotations

from datetime import date

import pytest

from app.tui.screens import launch_form
from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)
from tests.tui.helpers import FIXED_NOW, FIXED_TODAY


class _FixedDate(date):
    @classmethod
    def today(cls) -> date:
        return FIXED_TODAY


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch):
    """Today is FIXED_TODAY (and now FIXED_NOW) wherever a screen shows days or ages
    (sunsets, price ages, job ages), so the snapshots do not change from day to day."""
    import app.costs.catalog
    import app.tui.views.jobs

    # The lifecycle service's clock (cutoffs, retirements, cost horizons, sunsets).
    monkeypatch.setenv("FTM_TODAY", FIXED_TODAY.isoformat())
    monkeypatch.setattr(launch_form, "today", lambda: FIXED_TODAY)
    monkeypatch.setattr(app.tui.views.jobs, "now", lambda: FIXED_NOW)  # the age column
    monkeypatch.setattr(app.costs.catalog, "date", _FixedDate)  # the price ages
    return FIXED_TODAY


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch):
    """The OpenAI emulator on a random loopback port; ftm's settings point at it."""
    from app import database
    from app.sandbox.server import SandboxServer

    with SandboxServer(port=0, seconds_per_step=0.01, seed=7) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        monkeypatch.setenv("FTM_OPENAI__MAX_RETRIES", "0")
        database.reset()
        yield server
