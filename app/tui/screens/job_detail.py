"""One job: status and figures, a loss curve, checkpoints and events; reloads itself."""

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

from app.database import get_engine
from db.engine import read_session

RELOAD_EVERY_S = 2.0


class JobDetailScreen(Screen):
    """Details of job ``job_id``. Escape goes back to the list."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="job_detail.back"),
        Binding("r", "reload", "Refresh", id="job_detail.reload"),
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

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.plotted: dict[str, int] = {"train": 0, "validation": 0}

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

        with read_session(get_engine()) as session:
            detail = job_detail(session, self.job_id)
        self.post_message(self.Loaded(detail))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        from app.tui.views.jobs import status_cell

        d = message.detail
        j = d.job
        summary = Text()
        summary.append(f"Job {j.id}  {j.name}", style="bold")
        if j.simulated:
            summary.append("  simulated", style="bold magenta")
        summary.append("\nstatus: ")
        summary.append_text(status_cell(j))
        summary.append(f"   provider: {j.provider} {j.remote_id or ''}   model: {j.base_model}"
                       f" ({j.method})")
        summary.append(f"\nstep {j.step or 0}/{j.total_steps or '?'}   train loss: "
                       f"{_fmt(j.train_loss)}   eval loss: {_fmt(j.eval_loss)}   "
                       f"trained tokens: {j.trained_tokens if j.trained_tokens is not None else '-'}")
        if j.estimated_cost_usd is not None or j.actual_cost_usd is not None:
            est = f"${j.estimated_cost_usd:,.2f}" if j.estimated_cost_usd is not None else "-"
            act = f"${j.actual_cost_usd:,.2f}" if j.actual_cost_usd is not None else "-"
            summary.append(f"\ncost: estimated {est}, actual {act}"
                           + (" (simulated: nothing billed)" if j.simulated else ""))
        if j.hyperparameters:
            summary.append(f"\nhyperparameters: {json.dumps(j.hyperparameters)}")
        if j.fine_tuned_model:
            summary.append(f"\nfine-tuned model: {j.fine_tuned_model}", style="green")
        if j.error:
            summary.append(f"\nerror: {j.error.get('message')} (code {j.error.get('code')}, "
                           f"param {j.error.get('param')})", style="red")
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
        plot.refresh()
        self.plotted = {"train": len(train), "validation": len(valid)}  # what the plot shows

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


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"
