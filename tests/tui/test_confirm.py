"""The confirmation before spending states the amount, and a reflexive enter says no."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Static

from app.tui.screens.confirm import ConfirmScreen, format_usd


class _Host(App):
    def __init__(self, screen: ConfirmScreen) -> None:
        super().__init__()
        self.confirm = screen
        self.answers: list[bool] = []

    def on_mount(self) -> None:
        self.push_screen(self.confirm, self.answers.append)


async def _answer(*keys: str, **kwargs) -> tuple[list[bool], str]:
    screen = ConfirmScreen("Launch job 'tickets-v2'?", "supervised on gpt-4.1-mini", **kwargs)
    app = _Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        spend = str(screen.query_one("#confirm-spend", Static).render())
        await pilot.press(*keys)
        await pilot.pause()
    return app.answers, spend


async def test_states_the_amount_and_yes_confirms():
    answers, spend = await _answer("y", spend_usd=12.345, spend_note="1,234,500 tokens x 3 epochs")
    assert spend == "Estimated spend: $12.35"
    assert answers == [True]


async def test_enter_on_the_default_button_declines():
    answers, _ = await _answer("enter", spend_usd=3.0)
    assert answers == [False]


async def test_escape_declines_and_nothing_billed_is_said_when_free():
    answers, spend = await _answer("escape", spend_usd=None)
    assert answers == [False]
    assert spend == "Nothing is billed."


def test_format_usd():
    assert format_usd(1234.5) == "$1,234.50"
    assert format_usd(0.0042) == "$0.0042"
    assert format_usd(0) == "$0.00"
