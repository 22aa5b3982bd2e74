"""Snapshots of every screen at 80x24 and 120x40, in the dark and the light theme.

Data and dates are fixed (tests.tui.helpers), the header shows no clock, and every
worker has finished before the picture is taken, so the pictures are deterministic.
Regenerate after a deliberate change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from app.tui.app import DARK_THEME, LIGHT_THEME, create_app
from app.tui.errors import ErrorScreen
from app.tui.screens.confirm import ConfirmScreen
from tests.tui.helpers import add_dataset, add_jobs, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
THEMES = [pytest.param(DARK_THEME, id="dark"), pytest.param(LIGHT_THEME, id="light")]


@pytest.fixture
def seeded(ftm_home):
    dataset_id = add_dataset(ftm_home, "tickets")
    add_jobs(3, status="succeeded")
    add_jobs(2, status="running")
    return dataset_id


async def _settled(pilot) -> None:
    await settle(pilot)


def _tab(key: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
def test_jobs_tab(snap_compare, seeded, size, theme):
    assert snap_compare(
        create_app(theme=theme, start_poller=False), terminal_size=size, run_before=_settled
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("key", ["d", "c", "m"], ids=["datasets", "costs", "models"])
def test_other_tabs(snap_compare, seeded, size, key):
    assert snap_compare(create_app(start_poller=False), terminal_size=size, run_before=_tab(key))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
def test_help_screen(snap_compare, seeded, size, theme):
    assert snap_compare(
        create_app(theme=theme, start_poller=False),
        terminal_size=size,
        run_before=_tab("question_mark"),
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
def test_launch_wizard(snap_compare, sandbox, seeded, size, theme):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.pause(0.6)  # the debounced preview
        await settle(pilot)

    assert snap_compare(
        create_app(theme=theme, start_poller=False), terminal_size=size, run_before=run_before
    )


@pytest.mark.parametrize("size", SIZES)
def test_launch_confirmation(snap_compare, sandbox, seeded, size):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.pause(0.6)
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmScreen)

    assert snap_compare(create_app(start_poller=False), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_job_detail(snap_compare, seeded, size):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert type(pilot.app.screen).__name__ == "JobDetailScreen"

    assert snap_compare(create_app(start_poller=False), terminal_size=size, run_before=run_before)


@pytest.mark.expects_tui_error
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
def test_error_screen(snap_compare, seeded, size, theme):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.push_screen(
            ErrorScreen(
                "Unexpected error: RuntimeError — load jobs",
                "the job list could not be read\n\nThe app keeps running; details are in the Textual log.",
            )
        )
        await settle(pilot)

    assert snap_compare(
        create_app(theme=theme, start_poller=False), terminal_size=size, run_before=run_before
    )


@pytest.mark.parametrize("size", SIZES)
def test_promote_screen(snap_compare, seeded, size):
    from app.tui.screens.promote import PromoteScreen

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.push_screen(
            PromoteScreen(
                "Promote ft:gpt-4o-mini-2024-07-18:acme:tickets:abc123?",
                "tickets",
                "production",
                "✓ baseline: quality 0.910 beats the few-shot baseline 0.780 (run 4) by +0.050\n"
                "✓ general: general ability 0.950 vs base 0.960 (run 3): drop +0.010, allowed 0.050",
            )
        )
        await settle(pilot)

    assert snap_compare(create_app(start_poller=False), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_migration_plan_screen(snap_compare, size):
    from tests.promotion.plan_fixtures import record_plan_candidates

    record_plan_candidates()

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)

    assert snap_compare(create_app(start_poller=False), terminal_size=size, run_before=run_before)
