"""The help screen: every key binding of the screen in front, read from the bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from app.tui.commands import key_actions

INTRO = (
    "ftm: bring data, price the options, launch, watch, evaluate, promote. "
    "Every action below is also in the command palette (ctrl+p)."
)


class HelpScreen(ModalScreen[None]):
    """Lists the keys of ``screen`` (by area) and the global keys; escape closes it."""

    AREA = "Help"
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90; max-width: 100%; height: 100%; max-height: 40;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-title { text-style: bold; padding: 0 1; }
    HelpScreen #help-intro { color: $text-muted; padding: 0 1 1 1; }
    HelpScreen DataTable { height: 1fr; }
    HelpScreen #help-footer { color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close help", id="help.close"),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.described_screen = screen

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Keys", id="help-title")
            yield Static(INTRO, id="help-intro")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            yield Static("escape closes this screen", id="help-footer")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "keys", "action")
        previous_area = None
        for action in key_actions(self.app, self.described_screen):
            area = action.area if action.area != previous_area else ""
            previous_area = action.area
            table.add_row(area, action.keys_display, action.description)
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
