"""The ftm terminal app: one tab per area of the workflow."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from app.tui.views.datasets import DatasetsView


class FtmApp(App):
    """ftm's TUI. Build it with `create_app()` (the CLI and the tests share it)."""

    TITLE = "ftm"
    SUB_TITLE = "fine-tuning manager"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("d", "show_tab('datasets')", "Datasets", id="tab.datasets"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="datasets"):
            with TabPane("Datasets", id="datasets"):
                yield DatasetsView(id="datasets-view")
        yield Footer()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


def create_app() -> FtmApp:
    return FtmApp()


def run_tui() -> None:
    create_app().run()
