"""Pilot test of the migration plan screen (Models tab, ``l``): the plan of
`app.promotion.plan` at the fixed date (2026-11-28, 39 days before OpenAI's cutoff),
the highlighted alias's details, and the horizon moved from the keyboard."""

from __future__ import annotations

from textual.widgets import DataTable

from app.tui.app import create_app
from app.tui.screens.migration_plan import MigrationPlanScreen
from tests.promotion.plan_fixtures import HOLDER, record_plan_candidates
from tests.tui.helpers import settle


async def test_plan_screen_lists_the_alias_replacement_and_follows_the_horizon():
    runs = record_plan_candidates()
    app = create_app(start_poller=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MigrationPlanScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 1
        cells = [str(c) for c in table.get_row("routing/production")]
        assert cells[:5] == [
            "routing/production",
            f"{HOLDER} [openai]",
            "2027-01-06",
            "39",
            "stops accepting re-training",
        ]
        assert cells[5] == "adapters/good-1b [local]" and cells[6].startswith("$")
        details = str(screen.query_one("#plan-details").render())
        assert f"--run {runs['small'].id}" in details
        assert "forgetful-05b [local]: fails the general gate" in details

        # a horizon of 12 - 3 x 4 = 1 month (to 2026-12-28) ends before the cutoff
        for _ in range(4):
            await pilot.press("minus")
            await settle(pilot)
        assert screen.horizon_months == 1 and table.row_count == 0
        assert "No alias stops serving" in str(screen.query_one("#plan-headline").render())
        await pilot.press("plus")
        await settle(pilot)
        assert screen.horizon_months == 4 and table.row_count == 1

        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, MigrationPlanScreen)
