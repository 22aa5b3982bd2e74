"""Promote a model: the gates that passed, which alias, and why (kept in the history).

The alias and the reason are editable (tab to them); `y` or the button promotes, `n` or
escape does nothing. A refused promotion never reaches this screen: the Models tab says
which gate failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_WHY = "promoted from the TUI"


@dataclass(frozen=True)
class PromoteAnswer:
    alias: str
    why: str


def alias_problem(alias: str) -> str | None:
    """Why ``alias`` cannot name an alias, or None when it can."""
    if not alias:
        return "an alias needs a name (production, staging, ...)"
    if not ALIAS_PATTERN.match(alias):
        return "letters, digits, '.', '_' and '-' only, starting with a letter or digit"
    return None


class PromoteScreen(ModalScreen[PromoteAnswer | None]):
    """Asks where to promote and why.

    Args:
        title: e.g. "Promote ft:gpt-4o-mini:...".
        task: The task the alias belongs to.
        alias: The alias proposed (editable).
        gates: The gate results, one line each.
        retirement: When the candidate stops serving (`app.lifecycle`, via
            `app.promotion.sunsets`), shown above the alias; None shows nothing.
    """

    DEFAULT_CSS = """
    PromoteScreen { align: center middle; }
    PromoteScreen #promote-title { text-style: bold; }
    PromoteScreen #promote-gates { margin: 1 0; color: $text-muted; }
    PromoteScreen #promote-retirement { margin: 0 0 1 0; color: $warning; }
    PromoteScreen > VerticalScroll {
        width: 72; max-width: 95%; height: auto; max-height: 95%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    PromoteScreen Label { margin: 0; }
    PromoteScreen Input { margin: 0 0 0 1; }
    PromoteScreen #promote-problem { color: $text-error; height: auto; display: none; }
    PromoteScreen #promote-problem.shown { display: block; }
    PromoteScreen Horizontal { height: auto; margin: 1 0 0 0; align-horizontal: right; }
    PromoteScreen Button { margin: 0 0 0 2; }
    """
    BINDINGS = [
        Binding("y", "promote", "Promote", id="promote.yes"),
        Binding("n,escape", "cancel", "Cancel", id="promote.no"),
    ]
    AUTO_FOCUS = "#promote-yes"

    def __init__(
        self, title: str, task: str, alias: str, gates: str, *, retirement: str | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.task_name = task
        self.proposed_alias = alias
        self.gate_lines = gates
        self.retirement = retirement

    def compose(self) -> ComposeResult:
        with VerticalScroll(can_focus=False):  # tab goes field to field
            yield Static(self.title_text, id="promote-title", markup=False)
            yield Static(self.gate_lines, id="promote-gates", markup=False)
            if self.retirement:
                yield Static(self.retirement, id="promote-retirement", markup=False)
            yield Label(f"Alias of task {self.task_name!r} (tab to edit)")
            yield Input(self.proposed_alias, id="promote-alias", compact=True)
            yield Label("Why (kept in the promotion history)")
            yield Input(DEFAULT_WHY, id="promote-why", compact=True)
            yield Static("", id="promote-problem")
            with Horizontal():
                yield Button("Cancel (n)", id="promote-no")
                yield Button("Promote (y)", id="promote-yes", variant="warning")

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "promote-yes":
            self.action_promote()
        else:
            self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_promote()

    def action_promote(self) -> None:
        alias = self.query_one("#promote-alias", Input).value.strip()
        why = self.query_one("#promote-why", Input).value.strip() or DEFAULT_WHY
        problem = alias_problem(alias)
        if problem is not None:
            shown = self.query_one("#promote-problem", Static)
            shown.update(f"Alias: {problem}")
            shown.add_class("shown")
            self.query_one("#promote-alias", Input).focus()
            return
        self.dismiss(PromoteAnswer(alias, why))

    def action_cancel(self) -> None:
        self.dismiss(None)
