"""Failed workers become an error message on screen, never a crashed app.

Every blocking call in the TUI runs in a worker started with ``exit_on_error=False``.
When one raises, Textual sets its state to ERROR and posts `Worker.StateChanged` to the
node that started it; that message does not bubble. `ReportingWorkerManager` forwards
the failures of workers started anywhere in the app to the app itself, where one
``@on(Worker.StateChanged)`` handler (`report_worker_state`) shows them: expected
failures (a provider refusing, a missing API key, bad input) as an error notification
that says what to do, anything unexpected as a modal with the exception's summary. The
full traceback goes to the Textual log only, never on screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState
from textual.worker_manager import WorkerManager

from db.portable import is_busy
from providers.errors import ConfigurationError, ProviderError, SpecRejected


@dataclass(frozen=True)
class UserFacingError:
    """What to tell the user about an exception."""

    title: str
    message: str
    expected: bool
    """True for failures the user can act on (show a notification); False for bugs."""


def describe_error(error: BaseException) -> UserFacingError:
    """Turn an exception into a short title and message for the user (no traceback)."""
    if isinstance(error, ConfigurationError):
        return UserFacingError("Configuration needed", str(error), True)
    if isinstance(error, SpecRejected):
        return UserFacingError("Job refused before sending", str(error), True)
    if isinstance(error, ProviderError):
        code = f" ({error.code})" if error.code else ""
        hint = " It may work if you try again." if error.retryable else ""
        return UserFacingError(f"Provider error{code}", f"{error.message}{hint}", True)
    if is_busy(error):
        return UserFacingError(
            "Database busy",
            "Another ftm process held the database for too long; try again.",
            True,
        )
    title = _expected_app_error_title(error)
    if title is not None:
        return UserFacingError(title, str(error) or type(error).__name__, True)
    if isinstance(error, (ValueError, LookupError, FileNotFoundError, PermissionError)):
        return UserFacingError("Error", str(error) or type(error).__name__, True)
    return UserFacingError(
        f"Unexpected error: {type(error).__name__}",
        f"{error}\n\nThe app keeps running; details are in the Textual log.",
        False,
    )


# Errors the use-cases raise for the user to act on (their messages say what to do), with
# the title they are shown under. Listed by name so this module imports none of them.
_EXPECTED_APP_ERRORS: tuple[tuple[str, str, str], ...] = (
    ("app.cli.errors", "UserError", "Error"),
    ("app.jobs.launch", "LaunchError", "Launch"),
    ("app.costs.errors", "CostError", "No estimate"),
    ("app.evaluation.runner", "EvalError", "Evaluation failed"),
    ("app.evaluation.data", "EvalDataError", "Cannot evaluate"),
    ("app.evaluation.candidates", "CandidateError", "Cannot evaluate"),
    ("app.evaluation.scorers", "ScorerError", "Cannot evaluate"),
    ("app.evaluation.judge", "JudgeError", "Cannot evaluate"),
    ("app.evaluation.judge", "JudgeBudgetExhausted", "Evaluation stopped"),
    ("app.promotion.aliases", "GateRefused", "Promotion refused"),
    ("app.promotion.aliases", "PromotionError", "Promotion refused"),
    ("app.promotion.migrate", "MigrationError", "Migration failed"),
    # The database or settings broke while the app runs (file replaced, server gone).
    ("app.environment", "EnvironmentProblem", "Environment"),
)


def _expected_app_error_title(error: BaseException) -> str | None:
    """The title of ``error`` when a use-case raised it for the user; None otherwise."""
    import importlib

    for module, name, title in _EXPECTED_APP_ERRORS:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # that area is not installed; its errors cannot occur
        if isinstance(error, cls):
            return title
    return None


def report_error(app: App, error: BaseException, *, context: str = "") -> None:
    """Show ``error`` to the user: a notification if expected, else an error modal."""
    described = describe_error(error)
    title = f"{described.title} — {context}" if context else described.title
    if described.expected:
        # markup=False: a message quoting user input or a range like [0, 1) is plain text
        app.notify(described.message, title=title, severity="error", timeout=10, markup=False)
    else:
        app.push_screen(ErrorScreen(title, described.message))


def report_worker_state(app: App, event: Worker.StateChanged) -> None:
    """The app's one worker-state handler: report the workers that failed."""
    if event.state != WorkerState.ERROR:
        return
    worker = event.worker
    error = worker.error
    if error is None:
        return
    app.log.error(f"worker {worker.name!r} failed: {error!r}")
    report_error(app, error, context=_describe_worker(worker))


def _describe_worker(worker: Worker) -> str:
    return worker.name.replace("_", " ").strip()


class ReportingWorkerManager(WorkerManager):
    """Forwards failures of workers started on any widget to the app (see module doc).

    A widget that shows a group's failures itself, next to the field they concern, lists
    the group in its ``SHOWS_OWN_ERRORS`` class attribute.
    """

    def _remove_worker(self, worker: Worker) -> None:
        super()._remove_worker(worker)
        if (
            worker.state == WorkerState.ERROR
            and worker.node is not self._app
            and not worker.exit_on_error
            and worker.group not in getattr(worker.node, "SHOWS_OWN_ERRORS", ())
        ):
            self._app.post_message(Worker.StateChanged(worker, WorkerState.ERROR))


class ErrorScreen(ModalScreen[None]):
    """A modal for an unexpected failure: what happened, and that the app goes on."""

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical {
        width: 70; max-width: 95%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 1 2;
    }
    ErrorScreen #error-title { text-style: bold; color: $text-error; }
    ErrorScreen #error-message { margin: 1 0; }
    ErrorScreen Button { width: 100%; }
    """
    BINDINGS = [Binding("escape,enter", "dismiss_error", "Close", id="error.close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.error_title = title
        self.error_message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.error_title, id="error-title", markup=False)
            yield Static(self.error_message, id="error-message", markup=False)
            yield Button("Close", id="error-close", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss_error(self) -> None:
        self.dismiss(None)
