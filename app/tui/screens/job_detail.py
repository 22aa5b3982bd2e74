"""One job: status and figures, a loss curve, checkpoints and events; reloads itself.

Actions from the keyboard: cancel (confirmed, destructive), pause, resume (a paused job, or
a failed or cancelled local job from its checkpoint: confirmed, it trains again), evaluate
and promote.
An action the job or its provider does not allow is greyed in the summary and refused
with the reason. Every provider call runs in a thread worker and reports back by message;
a failure is shown with `report_error`, and the app goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from app.costs.money import usd
from app.database import get_engine
from db.engine import read_session

RELOAD_EVERY_S = 2.0


class JobDetailScreen(Screen):
    """Details of job ``job_id``. Escape goes back to the list."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="job_detail.back"),
        Binding("r", "reload", "Refresh", id="job_detail.reload"),
        Binding("x", "cancel_job", "Cancel job", id="job_detail.cancel"),
        Binding("p", "pause_job", "Pause", id="job_detail.pause"),
        Binding("u", "resume_job", "Resume", id="job_detail.resume"),
        Binding("e", "evaluate", "Evaluate", id="job_detail.evaluate"),
        Binding("o", "promote", "Promote", id="job_detail.promote"),
    ]
    DEFAULT_CSS = """
    JobDetailScreen #job-summary { height: auto; padding: 0 1; }
    JobDetailScreen #job-middle { height: 1fr; }
    JobDetailScreen #job-loss { width: 2fr; }
    JobDetailScreen #job-checkpoints { width: 1fr; }
    JobDetailScreen #job-events { height: 1fr; }
    """

    @dataclass
    class Loaded(Message):
        detail: object
        caps: object = None
        """The provider's capabilities (None: provider not installed)."""

    @dataclass
    class ActionDone(Message):
        """A job action finished: ``text`` says what happened, or ``error`` why not."""

        verb: str
        text: str = ""
        error: BaseException | None = None

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.plotted: dict[str, int] = {"train": 0, "validation": 0}
        self.health_marks: list[tuple[str, int]] = []
        """(kind, step) of the health findings marked on the loss chart."""
        self.job = None
        """The job row as last loaded (the actions check it)."""
        self.caps = None
        self._last_checkpoints: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("Loading…", id="job-summary")
            with Horizontal(id="job-middle"):
                yield PlotextPlot(id="job-loss")
                yield DataTable(id="job-checkpoints", cursor_type="row")
            yield DataTable(id="job-events", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#job-checkpoints", DataTable).add_columns("step", "checkpoint model")
        self.query_one("#job-events", DataTable).add_columns("time", "level", "message")
        self.load()
        self.set_interval(RELOAD_EVERY_S, self.load)

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="job-detail")
    def load(self) -> None:
        from app.jobs.queries import job_detail
        from app.tui.job_actions import provider_capabilities

        with read_session(get_engine()) as session:
            detail = job_detail(session, self.job_id)
        self.post_message(self.Loaded(detail, provider_capabilities(detail.job.provider)))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        from app.jobs.health import health_list
        from app.tui.views.jobs import status_cell

        d = message.detail
        j = d.job
        self.job, self.caps = j, message.caps
        summary = Text()
        summary.append(f"Job {j.id}  {j.name}", style="bold")
        if j.simulated:
            summary.append("  simulated", style="bold magenta")
        summary.append("\nstatus: ")
        summary.append_text(status_cell(j))
        summary.append(
            f"   provider: {j.provider} {j.remote_id or ''}   model: {j.base_model} ({j.method})"
        )
        summary.append(
            f"\nstep {j.step or 0}/{j.total_steps or '?'}   train loss: "
            f"{_fmt(j.train_loss)}   eval loss: {_fmt(j.eval_loss)}   "
            f"trained tokens: {j.trained_tokens if j.trained_tokens is not None else '-'}"
        )
        if j.estimated_cost_usd is not None or j.actual_cost_usd is not None:
            est, act = usd(j.estimated_cost_usd), usd(j.actual_cost_usd)
            summary.append(
                f"\ncost: estimated {est}, actual {act}"
                + _difference(j.estimated_cost_usd, j.actual_cost_usd)
                + (" (simulated: nothing billed)" if j.simulated else "")
            )
        if j.hyperparameters:
            summary.append(f"\nhyperparameters: {json.dumps(j.hyperparameters)}")
        spec = _spec_text(j.spec)
        if spec:
            summary.append(f"\nspec: {spec}", style="dim")
        if j.fine_tuned_model:
            summary.append(f"\nfine-tuned model: {j.fine_tuned_model}", style="green")
        if j.error:
            summary.append(
                f"\nerror: {j.error.get('message')} (code {j.error.get('code')}, "
                f"param {j.error.get('param')})",
                style="red",
            )
        summary.append("\n")
        summary.append_text(self._actions_line())
        self.query_one("#job-summary", Static).update(summary)

        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("loss")
        train = [(m.step, m.train_loss) for m in d.metrics if m.train_loss is not None]
        valid = [(m.step, m.eval_loss) for m in d.metrics if m.eval_loss is not None]
        if train:
            plt.plot([s for s, _ in train], [v for _, v in train], label="train")
        if valid:
            plt.plot([s for s, _ in valid], [v for _, v in valid], label="validation")
        self.health_marks = [(h["kind"], h["step"]) for h in health_list(d.events)]
        for _kind, step in self.health_marks:  # training-health findings, at their step
            plt.vline(step, "red")
        plot.refresh()
        self.plotted = {"train": len(train), "validation": len(valid)}  # what the plot shows

        self._last_checkpoints = list(d.checkpoints)
        checkpoints = self.query_one("#job-checkpoints", DataTable)
        checkpoints.clear()
        for c in d.checkpoints:
            checkpoints.add_row(str(c.step), c.model_ref, key=str(c.id))

        events = self.query_one("#job-events", DataTable)
        at_end = events.cursor_row >= events.row_count - 1
        events.clear()
        for e in d.events:
            level = Text(e.level, style={"warn": "yellow", "error": "red"}.get(e.level, ""))
            events.add_row(e.created_at.strftime("%H:%M:%S"), level, e.message, key=str(e.id))
        if at_end and events.row_count:
            events.move_cursor(row=events.row_count - 1)

    # -- actions ------------------------------------------------------------------------

    KEYS = {"cancel": "x", "pause": "p", "resume": "u", "evaluate": "e", "promote": "o"}

    def _actions_line(self) -> Text:
        """The actions with their keys; those the job does not allow now are dimmed."""
        from app.tui.job_actions import ACTIONS, why_not

        line = Text("actions: ")
        for action in ACTIONS:
            allowed = why_not(action, self.job, self.caps) is None
            line.append(f"{self.KEYS[action]} {action}", style="bold" if allowed else "dim strike")
            line.append("  ")
        return line

    def _refused(self, action: str) -> bool:
        """Tell the user why ``action`` cannot be done now; True if refused."""
        from app.tui.job_actions import why_not

        if self.job is None:
            self.notify("The job is still loading; try again in a moment.", severity="warning")
            return True
        reason = why_not(action, self.job, self.caps)
        if reason:
            self.notify(
                reason[0].upper() + reason[1:] + ".",
                title=f"Cannot {action}",
                severity="warning",
                timeout=8,
            )
            return True
        return False

    def action_cancel_job(self) -> None:
        """Cancel the job at its provider (asks first: it cannot be undone)."""
        from app.tui.screens.confirm import ConfirmScreen

        if self._refused("cancel"):
            return
        j = self.job
        billed = "" if j.simulated else " What has been trained so far may still be billed."
        self.app.push_screen(
            ConfirmScreen(
                f"Cancel job {j.id} '{j.name}'?",
                f"{j.provider} stops training it ({j.status}, step {j.step or 0}/"
                f"{j.total_steps or '?'}). This cannot be undone.{billed}",
                confirm_label="Cancel job",
                destructive=True,
            ),
            lambda yes: self.run_job_action("cancel") if yes else None,
        )

    def action_pause_job(self) -> None:
        """Pause the job (providers that can: billing stops until it is resumed)."""
        if not self._refused("pause"):
            self.run_job_action("pause")

    def action_resume_job(self) -> None:
        """Resume a paused job, or continue a failed local job from its last checkpoint
        (asks first: it trains, and bills, again)."""
        from app.tui.screens.confirm import ConfirmScreen

        if self._refused("resume"):
            return
        j = self.job
        if j.status == "paused":
            title = f"Resume job {j.id} '{j.name}'?"
            details = f"{j.provider} continues training from step {j.step or 0}."
        else:
            last = max((c.step for c in self._last_checkpoints), default=None)
            title = f"Continue {j.status} job {j.id} '{j.name}' from its last checkpoint?"
            details = (
                f"Training restarts from step {last} of {j.total_steps or '?'}."
                if last is not None
                else "No checkpoint is recorded: training restarts from the beginning."
            )
        remaining = None
        if (
            j.estimated_cost_usd is not None
            and not j.simulated
            and not (self.caps and self.caps.runs_locally)
        ):
            remaining = max(0.0, j.estimated_cost_usd - (j.actual_cost_usd or 0.0))
        self.app.push_screen(
            ConfirmScreen(title, details, spend_usd=remaining, confirm_label="Resume"),
            lambda yes: self.run_job_action("resume") if yes else None,
        )

    def action_evaluate(self) -> None:
        """Evaluate this job's model against its base (the Evaluate screen)."""
        if not self._refused("evaluate"):
            self.app.action_evaluate()

    def action_promote(self) -> None:
        """Promote this job's model (to production unless another alias is typed): the
        gates of its latest evaluation decide, as in the Models tab (which promotes)."""
        if not self._refused("promote"):
            self.find_eval_then_promote()

    @work(thread=True, exclusive=True, exit_on_error=False, group="job-promote")
    def find_eval_then_promote(self) -> None:
        from app.tui.job_actions import latest_eval_run

        run = latest_eval_run(get_engine(), self.job_id)
        self.app.call_from_thread(self._promote_run, run)

    def _promote_run(self, run) -> None:
        from app.tui.views.models import ModelsView

        if run is None:
            self.notify(
                f"Job {self.job_id} has no finished evaluation: press e to evaluate "
                "it against its base model first; the promotion gates need it.",
                title="Cannot promote",
                severity="warning",
                timeout=10,
            )
            return
        # The Models tab owns the promotion flow (gates, confirmation, the write).
        models = self.app.screen_stack[0].query_one(ModelsView)
        models.check_then_confirm(
            run.task, "production", run.id, run.model, run.provider, run.model
        )

    @work(thread=True, exit_on_error=False, group="job-action")
    def run_job_action(self, verb: str) -> None:
        """Run ``verb`` (cancel, pause, resume) through the use-case, off the event loop."""
        from app.jobs import actions

        try:
            job = getattr(actions, f"{verb}_job")(self.job_id)
        except Exception as exc:  # shown by report_error; the screen stays usable
            self.post_message(self.ActionDone(verb, error=exc))
            return
        self.post_message(self.ActionDone(verb, f"Job {job.id}: {verb} done, now {job.status}."))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        from app.tui.errors import report_error

        if message.error is not None:
            report_error(self.app, message.error, context=f"{message.verb} job {self.job_id}")
        else:
            self.notify(message.text, title=message.verb.capitalize(), timeout=6)
        self.load()


def _difference(estimate: float | None, actual: float | None) -> str:
    """How far the actual cost is from the estimate, e.g. " (-4% vs estimate)"."""
    if estimate is None or actual is None or estimate == 0:
        return ""
    return f" ({(actual - estimate) / estimate:+.0%} vs estimate)"


def _spec_text(spec: dict | None, width: int = 48) -> str:
    """The launch spec in one line (hyperparameters are shown on their own line)."""
    if not spec:
        return ""
    parts = []
    for key, value in spec.items():
        if key == "hyperparameters" or value in (None, "", {}, []):
            continue
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        parts.append(f"{key}={text if len(text) <= width else text[: width - 1] + '…'}")
    return "  ".join(parts)


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"
