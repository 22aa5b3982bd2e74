"""Add a dataset from the TUI: a path, a name, a validation share; the intake (validation,
exact token counts, duplicates, split) runs in a thread worker, as `ftm data add` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState


class AddDatasetScreen(ModalScreen[int | None]):
    """Dismisses with the dataset's id once added (or None)."""

    AREA = "Add dataset"
    SHOWS_OWN_ERRORS = ("add-dataset",)
    DEFAULT_CSS = """
    AddDatasetScreen { align: center middle; }
    AddDatasetScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    AddDatasetScreen #add-title { text-style: bold; }
    AddDatasetScreen .field-label { margin: 1 0 0 0; color: $text-muted; }
    AddDatasetScreen #add-status { margin: 1 0 0 0; height: auto; }
    AddDatasetScreen #add-status.-error { color: $text-error; }
    AddDatasetScreen Horizontal { height: auto; align-horizontal: right; margin: 1 0 0 0; }
    AddDatasetScreen Button { margin: 0 0 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "add", "Add", id="add_dataset.add"),
        Binding("escape", "cancel", "Cancel", id="add_dataset.cancel"),
    ]

    @dataclass
    class DatasetAdded(Message):
        dataset_id: int
        name: str
        verdict: str
        created: bool
        summary: str

    def __init__(self, path: str = "") -> None:
        super().__init__()
        self.initial_path = path
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Add a dataset (JSONL: chat, instruction or preference)", id="add-title")
            yield Label("File", classes="field-label")
            yield Input(self.initial_path, id="add-path", placeholder="path/to/train.jsonl")
            yield Label("Name (default: the file's name)", classes="field-label")
            yield Input(id="add-name", placeholder="e.g. tickets")
            yield Label("Validation share (held out for evaluation)", classes="field-label")
            yield Input("0.1", id="add-val")
            yield Static("", id="add-status")
            with Horizontal():
                yield Button("Cancel (esc)", id="add-cancel")
                yield Button("Add (ctrl+s)", id="add-go", variant="primary")

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#add-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    def action_add(self) -> None:
        if self._busy:
            return
        path = self.query_one("#add-path", Input).value.strip()
        name = self.query_one("#add-name", Input).value.strip() or None
        val_text = self.query_one("#add-val", Input).value.strip() or "0.1"
        if not path:
            self._status("Type the path of a JSONL file.", error=True)
            return
        if not Path(path).expanduser().is_file():
            self._status(f"{path}: no such file.", error=True)
            return
        try:
            val_fraction = float(val_text)
        except ValueError:
            self._status(f"Validation share: {val_text!r} is not a number (e.g. 0.1).", error=True)
            return
        if not 0.0 <= val_fraction < 1.0:
            self._status("Validation share: at least 0 and below 1 (e.g. 0.1).", error=True)
            return
        self._busy = True
        self._status("checking: validation, token counts, duplicates, split…")
        self.intake(str(Path(path).expanduser()), name, val_fraction)

    @work(thread=True, exclusive=True, exit_on_error=False, group="add-dataset")
    def intake(self, path: str, name: str | None, val_fraction: float) -> None:
        from app.datasets.store import add_dataset

        dataset, created = add_dataset(path, name=name, val_fraction=val_fraction)
        total = ((dataset.stats or {}).get("tokens") or {}).get("total")
        summary = (
            f"{dataset.name}: {dataset.n_examples} examples ({dataset.n_train} train / "
            f"{dataset.n_validation} validation), verdict {dataset.verdict}"
            + (f", {total:,} tokens" if total else "")
        )
        self.post_message(
            self.DatasetAdded(dataset.id, dataset.name, dataset.verdict, created, summary)
        )

    @on(DatasetAdded)
    def _added(self, message: DatasetAdded) -> None:
        self._busy = False
        title = "Dataset added" if message.created else "Already added (same content)"
        self.app.notify(message.summary, title=title)
        self.dismiss(message.dataset_id)

    @on(Worker.StateChanged)
    def _failed(self, event: Worker.StateChanged) -> None:
        # The file's problems are shown here, where the user can fix the path and retry.
        if event.worker.group == "add-dataset" and event.state == WorkerState.ERROR:
            self._busy = False
            self._status(str(event.worker.error), error=True)

    @on(Button.Pressed, "#add-go")
    def _go(self) -> None:
        self.action_add()

    @on(Button.Pressed, "#add-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_add()

    def action_cancel(self) -> None:
        if not self._busy:
            self.dismiss(None)
