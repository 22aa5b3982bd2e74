"""A yes/no confirmation before anything is spent or destroyed.

``ConfirmScreen`` states the amount at stake when there is one; "Cancel" has the focus,
so pressing enter by reflex spends nothing. Push it with a callback or
``await app.push_screen_wait(...)``; it dismisses with True only on an explicit yes.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from app.costs.money import usd


def format_usd(amount: float | None) -> str:
    """Dollars as every face prints them (`app.costs.money.usd`)."""
    return usd(amount)


class ConfirmScreen(ModalScreen[bool]):
    """Asks before an action that spends money or destroys something.

    Args:
        title: The question, e.g. "Launch job 'tickets-v2'?".
        details: Lines that say what will happen.
        spend_usd: The estimated amount to be spent; stated in bold. None: nothing billed.
        spend_note: How the amount was reached (e.g. "1.2M billable tokens x 3 epochs").
        confirm_label: The text of the yes button ("Launch", "Cancel job", ...).
        destructive: Colour the yes button as an error (for cancel/delete).
    """

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; max-width: 95%; height: auto; max-height: 95%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    ConfirmScreen #confirm-title { text-style: bold; }
    ConfirmScreen #confirm-details { margin: 1 0 0 0; color: $text-muted; }
    ConfirmScreen #confirm-spend { margin: 1 0 0 0; text-style: bold; color: $text-warning; }
    ConfirmScreen #confirm-spend-note { color: $text-muted; }
    ConfirmScreen Horizontal { height: auto; margin: 1 0 0 0; align-horizontal: right; }
    ConfirmScreen Button { margin: 0 0 0 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]
    AUTO_FOCUS = "#confirm-no"

    def __init__(
        self,
        title: str,
        details: str = "",
        *,
        spend_usd: float | None = None,
        spend_note: str = "",
        confirm_label: str = "Confirm",
        destructive: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.details = details
        self.spend_usd = spend_usd
        self.spend_note = spend_note
        self.confirm_label = confirm_label
        self.destructive = destructive

    @property
    def spend_line(self) -> str:
        """The sentence that states the money at stake."""
        if self.spend_usd is None:
            return "Nothing is billed."
        return f"Estimated spend: {format_usd(self.spend_usd)}"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="confirm-title", markup=False)
            if self.details:
                yield Static(self.details, id="confirm-details", markup=False)
            yield Static(self.spend_line, id="confirm-spend", markup=False)
            if self.spend_note:
                yield Static(self.spend_note, id="confirm-spend-note", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="confirm-no")
                yield Button(
                    f"{self.confirm_label} (y)",
                    id="confirm-yes",
                    variant="error" if self.destructive else "warning",
                )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
