"""The app shell: tabs, global keys, help screen and command palette from the bindings."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, TabbedContent

from app.tui.app import DARK_THEME, LIGHT_THEME, FtmApp, create_app
from app.tui.commands import FtmCommands, command_title, key_actions
from app.tui.screens.help import HelpScreen
from tests.tui.helpers import settle


async def test_tab_keys_switch_tabs():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "jobs"
        for key, tab in (
            ("d", "datasets"),
            ("dollar_sign", "costs"),
            ("m", "models"),
            ("j", "jobs"),
        ):
            await pilot.press(key)
            assert tabs.active == tab


async def test_every_app_binding_has_an_id_and_a_description():
    for binding in FtmApp.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id, binding
        assert binding.description, binding


async def test_help_lists_every_binding_of_the_app():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        described = {str(row[2]) for row in rows}
        for binding in FtmApp.BINDINGS:
            assert binding.description in described, binding
        keys = " ".join(str(row[1]) for row in rows)
        assert "f1" in keys and "^p" in keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


class _ViewWithAKey(Vertical):
    """A view in a tab that adds a binding: help and palette must pick it up unaided."""

    BINDINGS = [Binding("x", "shout", "Shout at the view", id="test.shout")]
    shouted = 0

    def action_shout(self) -> None:
        type(self).shouted += 1


_ViewWithAKey.__module__ = "app.tui.views.test_only"


async def test_a_view_binding_appears_in_help_and_palette_and_runs_from_it():
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.query_one("#datasets-view").mount(_ViewWithAKey(id="shouty"))
        await pilot.pause()
        found = [a for a in key_actions(app, app.screen) if a.action == "shout"]
        assert len(found) == 1
        assert found[0].area == "Datasets" and found[0].keys == ("x",)
        assert command_title(found[0]) == "Datasets: Shout at the view"

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"shout")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert _ViewWithAKey.shouted == 1


async def test_palette_offers_every_global_action():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        provider = FtmCommands(app.screen)
        titles = [hit.text for hit in [h async for h in provider.discover()]]
        for binding in FtmApp.BINDINGS:
            assert binding.description in titles, binding


async def test_palette_switches_tabs_and_opens_the_wizard():
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Models")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.query_one(TabbedContent).active == "models"
        await pilot.press("ctrl+p")
        await pilot.press(*"New job")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "LaunchWizard"


async def test_theme_toggles_between_dark_and_light_and_honours_the_setting(monkeypatch):
    app = create_app(start_poller=False)
    async with app.run_test() as pilot:
        assert app.theme == DARK_THEME
        await pilot.press("ctrl+t")
        assert app.theme == LIGHT_THEME
        await pilot.press("ctrl+t")
        assert app.theme == DARK_THEME

    from app import database

    monkeypatch.setenv("FTM_TUI__THEME", LIGHT_THEME)
    database.reset()
    app = create_app(start_poller=False)
    async with app.run_test():
        assert app.theme == LIGHT_THEME


async def test_keys_are_remapped_by_binding_id_from_the_settings(monkeypatch):
    from app import database

    monkeypatch.setenv("FTM_TUI__KEYMAP", '{"app.new_job": "ctrl+n", "tab.models": "M"}')
    database.reset()
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("M")
        assert app.query_one(TabbedContent).active == "models"
        found = {a.binding_id: a.keys for a in key_actions(app, app.screen)}
        assert found["app.new_job"] == ("^n",)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert type(app.screen).__name__ == "LaunchWizard"


async def test_help_and_palette_follow_the_screen_in_front(ftm_home):
    from tests.tui.helpers import add_jobs

    add_jobs(2)
    app = create_app(start_poller=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the job's detail
        await settle(pilot)
        assert type(app.screen).__name__ == "JobDetailScreen"
        detail = app.screen
        areas = {a.area for a in key_actions(app, detail)}
        assert "Job Detail" in areas and "Global" in areas
        await pilot.press("question_mark")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert any(str(r[0]) == "Job Detail" for r in rows)
        await pilot.press("escape")
        await pilot.press("d")  # a tab key leaves the detail screen
        assert app.screen is app.screen_stack[0]
        assert app.query_one(TabbedContent).active == "datasets"

        await pilot.press("n")
        await settle(pilot)
        wizard = app.screen
        actions = key_actions(app, wizard)
        assert {a.area for a in actions} == {"Launch wizard"}, "no global keys on a modal"
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is wizard
