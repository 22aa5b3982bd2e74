"""The ftm terminal app: one tab per area of the workflow.

Adding an area: put its view in a `TabPane` in `compose` and a `show_tab` binding (with an
id, so users can remap it) in `BINDINGS`. The help screen and the command palette are
generated from the bindings, so a bound action is reachable from both without more work.
"""

from __future__ import annotations

import gc
import threading

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, TabbedContent, TabPane
from textual.worker import Worker

from app.tui.commands import FtmCommands
from app.tui.errors import ReportingWorkerManager, report_worker_state
from app.tui.views.costs import CostsView
from app.tui.views.datasets import DatasetsView
from app.tui.views.deployments import DeploymentsView
from app.tui.views.jobs import JobsView
from app.tui.views.models import ModelsView

DARK_THEME = "textual-dark"
LIGHT_THEME = "textual-light"

LATER_TABS = ("datasets", "costs", "models", "deployments")
"""Tabs whose views' loads wait until the Jobs table shows its rows (or until the user
opens one of them): the first screen is the jobs table, and their imports and queries
would compete with its load for the GIL."""
STARTUP_DEADLINE_S = 5.0
"""Start-up ends this long after mounting even if the first jobs load never arrives."""

_gc_frozen = False
"""Whether this process froze its start-up objects already (once is enough)."""


class StartupWorkerManager(ReportingWorkerManager):
    """Starts the thread workers of the later tabs' views held at a gate, opened when
    start-up ends (`open_gate`): they wait in their thread, using no CPU, and then run
    one at a time. (Held, not left unstarted: waiting for a worker that never started is
    an error. Worker internals are used: Textual is pinned exactly.)"""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.gate = threading.Event()
        self._one_at_a_time = threading.Lock()

    def add_worker(self, worker: Worker, start: bool = True, exclusive: bool = True) -> None:
        if not self.gate.is_set() and worker._thread_worker and _in_later_tab(worker.node):
            work, gate, turn = worker._work, self.gate, self._one_at_a_time

            def after_startup():
                gate.wait(STARTUP_DEADLINE_S)
                with turn:  # one after another: the UI thread still gets the GIL often
                    return work()

            worker._work = after_startup
        super().add_worker(worker, start=start, exclusive=exclusive)

    def open_gate(self) -> None:
        self.gate.set()


def _in_later_tab(node: object) -> bool:
    ancestors = getattr(node, "ancestors_with_self", ())
    return any(isinstance(a, TabPane) and a.id in LATER_TABS for a in ancestors)


class FtmApp(App):
    """ftm's TUI. Build it with `create_app()` (the CLI and the tests share it)."""

    TITLE = "ftm"
    SUB_TITLE = "fine-tuning manager"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {FtmCommands}
    BINDINGS = [
        Binding("j", "show_tab('jobs')", "Jobs", id="tab.jobs"),
        Binding("d", "show_tab('datasets')", "Datasets", id="tab.datasets"),
        Binding("c,dollar_sign", "show_tab('costs')", "Costs", id="tab.costs", key_display="c"),
        Binding("m", "show_tab('models')", "Models", id="tab.models"),
        Binding("p", "show_tab('deployments')", "Deployments", id="tab.deployments"),
        Binding("n", "new_job", "New job", id="app.new_job"),
        Binding("a", "add_dataset", "Add data", id="app.add_dataset"),
        Binding("e", "evaluate", "Evaluate", id="app.evaluate"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", id="app.toggle_theme", show=False),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, *, theme: str | None = None, start_poller: bool = True) -> None:
        super().__init__()
        # Textual's worker-state messages do not bubble; this manager forwards the failed
        # ones to the app so one handler reports them all (see app.tui.errors).
        self._workers = StartupWorkerManager(self)
        self._initial_theme = theme
        self.start_poller = start_poller
        """Whether the in-app poller runs (tests that drive time themselves turn it off)."""
        # No garbage collection while starting: nearly all that start-up allocates lives
        # as long as the app, and a full collection over it stalls whichever thread set
        # it off for a third of a second. `_end_startup` freezes it and turns GC back on.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        self._started = False

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="jobs"):
            with TabPane("Jobs", id="jobs"):
                yield JobsView(id="jobs-view")
            with TabPane("Datasets", id="datasets"):
                yield DatasetsView(id="datasets-view")
            with TabPane("Costs", id="costs"):
                yield CostsView(id="costs-view")
            with TabPane("Models", id="models"):
                yield ModelsView(id="models-view")
            with TabPane("Deployments", id="deployments"):
                yield DeploymentsView(id="deployments-view")
        yield Footer()

    def on_mount(self) -> None:
        from app.settings import get_settings

        tui = get_settings().tui
        self.theme = self._initial_theme or tui.theme
        if tui.keymap:
            self.set_keymap(tui.keymap)
        self._focus_active_table()
        self.set_timer(STARTUP_DEADLINE_S, self._end_startup)

    def on_unmount(self) -> None:
        self._release_gc()
        self._workers.open_gate()

    # -- start-up -----------------------------------------------------------------------

    @on(JobsView.FirstLoadComplete)
    def _end_startup(self) -> None:
        """The first screen is up: garbage collection back on, the other tabs' loads go."""
        if self._started:
            return
        self._started = True
        self._release_gc()
        self._workers.open_gate()

    def _release_gc(self) -> None:
        global _gc_frozen
        if self._gc_was_enabled and not gc.isenabled():
            if not _gc_frozen:
                # Out of the collector's sight for good: the modules, widgets and styles
                # of the first screen; later full collections only walk newer objects.
                gc.freeze()
                _gc_frozen = True
            gc.enable()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id in LATER_TABS:
            self._end_startup()  # opened before the jobs were shown: its load goes now
        self._focus_active_table()

    def _focus_active_table(self) -> None:
        """Put the focus on the active tab's table, so arrows and enter work at once.
        (Not on an input: it would swallow the letter keys that switch tabs.)"""
        tabs = self.screen_stack[0].query_one(TabbedContent)
        pane = tabs.active_pane
        tables = pane.query(DataTable) if pane is not None else []
        if tables:
            tables.first().focus()

    # -- actions ------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        """Switch to the tab ``tab`` (jobs, datasets, costs, models, deployments), leaving
        any screen opened over the tabs (e.g. a job's detail)."""
        while len(self.screen_stack) > 1 and not self.screen.is_modal:
            self.pop_screen()
        self.screen_stack[0].query_one(TabbedContent).active = tab

    def action_new_job(self, dataset_id: int | None = None) -> None:
        """Open the launch wizard; from the Datasets tab, with the highlighted dataset."""
        from app.tui.screens.launch_wizard import LaunchWizard

        if dataset_id is None:
            dataset_id = self._highlighted_dataset()
        self.push_screen(LaunchWizard(dataset_id=dataset_id))

    def action_add_dataset(self) -> None:
        """Add a dataset (a JSONL file) through the intake; the Datasets tab shows it."""
        from app.tui.screens.add_dataset import AddDatasetScreen

        def added(dataset_id: int | None) -> None:
            if dataset_id is not None:
                self.action_show_tab("datasets")
                self._refresh_views("#datasets-view", "#costs-view")

        self.push_screen(AddDatasetScreen(), added)

    def action_evaluate(self) -> None:
        """Evaluate a finished job (the one highlighted or open, if any) against its base."""
        from app.tui.screens.evaluate import EvaluateScreen

        def evaluated(run_ids: list[int] | None) -> None:
            if run_ids:
                self.action_show_tab("models")
                self._refresh_views("#models-view")

        self.push_screen(EvaluateScreen(job_id=self._current_job()), evaluated)

    def _refresh_views(self, *selectors: str) -> None:
        """Ask views to reload (by their own refresh/reload action, or the Costs view's
        choice loader), after something they list was added."""
        for selector in selectors:
            for view in self.screen_stack[0].query(selector):
                for name in ("refresh", "reload"):
                    if hasattr(view, f"action_{name}"):
                        self.call_later(self.run_action, name, view)
                        break
                else:
                    if callable(getattr(view, "load_choices", None)):
                        view.load_choices()

    def _current_job(self) -> int | None:
        """The job whose detail is open, else the one highlighted in the Jobs tab."""
        job_id = getattr(self.screen, "job_id", None)
        if isinstance(job_id, int):
            return job_id
        main = self.screen_stack[0]
        if self.screen is not main or main.query_one(TabbedContent).active != "jobs":
            return None
        return _highlighted_key(main, "#jobs-table")

    def _highlighted_dataset(self) -> int | None:
        main = self.screen_stack[0]
        if self.screen is not main or main.query_one(TabbedContent).active != "datasets":
            return None
        return _highlighted_key(main, "#datasets-table")

    def action_help(self) -> None:
        """Show the key bindings of the screen in front."""
        from app.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_theme(self) -> None:
        """Switch between the dark and the light theme."""
        self.theme = LIGHT_THEME if self.theme == DARK_THEME else DARK_THEME

    # -- errors -------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def _on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_state(self, event)


def _highlighted_key(screen, selector: str) -> int | None:
    """The integer row key of the highlighted row of the table ``selector``, if any."""
    tables = screen.query(selector)
    if not tables:
        return None
    table = tables.first(DataTable)
    if not table.row_count:
        return None
    key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
    return int(key) if key is not None and str(key).isdigit() else None


def create_app(*, theme: str | None = None, start_poller: bool = True) -> FtmApp:
    """Build the app; the CLI (`ftm`) and the tests both come through here."""
    return FtmApp(theme=theme, start_poller=start_poller)


def run_tui() -> None:
    create_app().run()
