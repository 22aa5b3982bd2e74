"""Evaluate a finished job from the TUI: its fine-tuned model against the base model
zero-shot and with k-shot prompts, on the dataset's held-out split, through the same
use-case as `ftm eval`. States what the calls will cost before running them.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from app.tui.screens.confirm import ConfirmScreen, format_usd


@dataclass(frozen=True)
class JobChoice:
    id: int
    name: str
    provider: str
    base_model: str
    fine_tuned_model: str
    dataset_id: int
    dataset_name: str
    n_validation: int
    simulated: bool

    @property
    def label(self) -> str:
        return f"{self.id} {self.name} ({self.provider}, {self.base_model})"


@dataclass(frozen=True)
class EvalPlan:
    """What the evaluation will run and an estimate of what it costs."""

    calls: int
    spend_usd: float | None
    """None: nothing billed (local models, the sandbox) or no price known."""
    note: str


def finished_jobs() -> list[JobChoice]:
    """Jobs with a fine-tuned model and a dataset, newest first (runs in a thread)."""
    from sqlmodel import select

    from app.database import get_engine
    from db.engine import read_session
    from db.models import Dataset, Job

    with read_session(get_engine()) as session:
        rows = session.exec(
            select(Job, Dataset)
            .join(Dataset, Dataset.id == Job.dataset_id)
            .where(Job.fine_tuned_model.is_not(None))
            .order_by(Job.id.desc())
            .limit(200)
        ).all()
    return [
        JobChoice(
            j.id,
            j.name,
            j.provider,
            j.base_model,
            j.fine_tuned_model,
            d.id,
            d.name,
            d.n_validation,
            j.simulated,
        )
        for j, d in rows
    ]


def plan_evaluation(
    job: JobChoice, *, k: int, zero_shot: bool, general: bool, limit: int | None
) -> EvalPlan:
    """Count the calls and price them from the dataset's request shape and the catalog."""
    from app.database import get_engine
    from app.evaluation.general import general_items
    from app.evaluation.pricing import request_cost
    from app.jobs.providers import capabilities_of
    from db.engine import read_session
    from db.models import Dataset

    n = min(job.n_validation, limit) if limit else job.n_validation
    n_general = len(general_items()) if general else 0
    candidates = [(job.base_model, 0)] if zero_shot else []
    if k > 0:
        candidates.append((job.base_model, k))
    candidates.append((job.fine_tuned_model, 0))
    calls = (n + n_general) * len(candidates)
    if job.simulated or not capabilities_of(job.provider).per_token_billing:
        where = "the sandbox" if job.simulated else "this machine"
        return EvalPlan(calls, None, f"{calls} calls on {where}: nothing is billed.")
    from app.costs.dataset_inputs import prompt_profile

    with read_session(get_engine()) as session:
        dataset = session.get(Dataset, job.dataset_id)
    profile = prompt_profile(dataset, "o200k_base")
    total = 0.0
    for model, shots in candidates:
        prompt = profile.prompt_tokens + shots * profile.shot_tokens + profile.system_tokens
        cost = request_cost(job.provider, model, round(prompt), round(profile.output_tokens))
        if cost is None:
            return EvalPlan(calls, None, f"{calls} calls; {model} has no price in the catalog.")
        total += cost * (n + n_general)
    return EvalPlan(
        calls,
        total,
        f"{calls} calls: {n} held-out + {n_general} general examples x {len(candidates)} "
        f"models, priced from the dataset's average request ({profile.prompt_tokens:.0f} "
        f"prompt + {profile.output_tokens:.0f} output tokens, {k} shots of "
        f"{profile.shot_tokens:.0f})",
    )


class EvaluateScreen(ModalScreen[list[int] | None]):
    """Dismisses with the new eval runs' ids (or None)."""

    AREA = "Evaluate"
    SHOWS_OWN_ERRORS = ("evaluate-plan",)
    DEFAULT_CSS = """
    EvaluateScreen { align: center middle; }
    EvaluateScreen > Vertical {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    EvaluateScreen #eval-title { text-style: bold; }
    EvaluateScreen .field-label { margin: 1 0 0 0; color: $text-muted; }
    EvaluateScreen Horizontal.row { height: auto; }
    EvaluateScreen Horizontal.row Input { width: 12; }
    EvaluateScreen #eval-plan, EvaluateScreen #eval-progress { margin: 1 0 0 0; height: auto; }
    EvaluateScreen #eval-plan.-error { color: $text-error; }
    EvaluateScreen #eval-buttons { height: auto; align-horizontal: right; margin: 1 0 0 0; }
    EvaluateScreen Button { margin: 0 0 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "run", "Evaluate…", id="evaluate.run"),
        Binding("escape", "cancel", "Cancel", id="evaluate.cancel"),
    ]

    @dataclass
    class JobsLoaded(Message):
        jobs: list[JobChoice]

    @dataclass
    class Planned(Message):
        plan: EvalPlan

    @dataclass
    class Progressed(Message):
        line: str

    @dataclass
    class Evaluated(Message):
        run_ids: list[int]
        task: str

    def __init__(self, job_id: int | None = None) -> None:
        super().__init__()
        self.initial_job_id = job_id
        self.jobs: list[JobChoice] = []
        self.plan: EvalPlan | None = None
        self._evaluating = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Evaluate a fine-tuned model against its base", id="eval-title")
            yield Label("Job", classes="field-label")
            yield Select([], id="eval-job", prompt="loading…")
            yield Label(
                "Task (the leaderboard and the alias it competes for)", classes="field-label"
            )
            yield Input(id="eval-task", placeholder="e.g. tickets")
            with Horizontal(classes="row"):
                yield Label("Shots in the few-shot baseline ", classes="field-label")
                yield Input("3", id="eval-k")
                yield Label("  Examples (blank: all) ", classes="field-label")
                yield Input("", id="eval-limit")
            yield Checkbox("Zero-shot baseline", True, id="eval-zero")
            yield Checkbox(
                "General-ability check (catastrophic forgetting)", True, id="eval-general"
            )
            yield Static("", id="eval-plan")
            yield Static("", id="eval-progress")
            with Horizontal(id="eval-buttons"):
                yield Button("Cancel (esc)", id="eval-cancel")
                yield Button("Evaluate… (ctrl+s)", id="eval-go", variant="warning")

    def on_mount(self) -> None:
        self.load_jobs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate-jobs")
    def load_jobs(self) -> None:
        self.post_message(self.JobsLoaded(finished_jobs()))

    @on(JobsLoaded)
    def _jobs_loaded(self, message: JobsLoaded) -> None:
        self.jobs = message.jobs
        select = self.query_one("#eval-job", Select)
        select.set_options([(j.label, j.id) for j in message.jobs])
        select.prompt = "choose a job" if message.jobs else "no finished job yet"
        wanted = (
            self.initial_job_id
            if any(j.id == self.initial_job_id for j in self.jobs)
            else (self.jobs[0].id if self.jobs else None)
        )
        if wanted is not None:
            select.value = wanted

    def selected_job(self) -> JobChoice | None:
        value = self.query_one("#eval-job", Select).value
        return next((j for j in self.jobs if j.id == value), None)

    def _settings(self) -> tuple[int, int | None, bool, bool]:
        """(k, limit, zero_shot, general); ValueError says which field is wrong."""
        k_text = self.query_one("#eval-k", Input).value.strip() or "0"
        limit_text = self.query_one("#eval-limit", Input).value.strip()
        if not k_text.isdigit():
            raise ValueError(f"Shots: {k_text!r} is not a whole number (0 for none).")
        if limit_text and (not limit_text.isdigit() or int(limit_text) == 0):
            raise ValueError(f"Examples: {limit_text!r} is not a positive whole number.")
        return (
            int(k_text),
            int(limit_text) if limit_text else None,
            self.query_one("#eval-zero", Checkbox).value,
            self.query_one("#eval-general", Checkbox).value,
        )

    @on(Select.Changed, "#eval-job")
    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event) -> None:
        job = self.selected_job()
        task = self.query_one("#eval-task", Input)
        if isinstance(event, Select.Changed) and job and not task.value:
            task.value = job.dataset_name
        if job is None:
            return
        try:
            k, limit, zero_shot, general = self._settings()
        except ValueError as exc:
            self._plan_text(str(exc), error=True)
            return
        self.compute_plan(job, k, zero_shot, general, limit)

    def _plan_text(self, text: str, *, error: bool = False) -> None:
        plan = self.query_one("#eval-plan", Static)
        plan.update(text)
        plan.set_class(error, "-error")

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate-plan")
    def compute_plan(
        self, job: JobChoice, k: int, zero_shot: bool, general: bool, limit: int | None
    ) -> None:
        self.post_message(
            self.Planned(
                plan_evaluation(job, k=k, zero_shot=zero_shot, general=general, limit=limit)
            )
        )

    @on(Planned)
    def _planned(self, message: Planned) -> None:
        self.plan = message.plan
        spend = (
            "Estimated spend: " + format_usd(message.plan.spend_usd)
            if message.plan.spend_usd is not None
            else ""
        )
        self._plan_text(f"{message.plan.note}\n{spend}".strip())

    def action_run(self) -> None:
        if self._evaluating:
            return
        job = self.selected_job()
        task = self.query_one("#eval-task", Input).value.strip()
        if job is None or not task:
            self._plan_text("Choose a job and name the task.", error=True)
            return
        try:
            self._settings()
        except ValueError as exc:
            self._plan_text(str(exc), error=True)
            return
        plan = self.plan
        self.app.push_screen(
            ConfirmScreen(
                f"Evaluate {job.name} for task {task!r}?",
                plan.note if plan else "",
                spend_usd=plan.spend_usd if plan else None,
                confirm_label="Evaluate",
            ),
            self._confirmed,
        )

    def _confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        job = self.selected_job()
        k, limit, zero_shot, general = self._settings()
        task = self.query_one("#eval-task", Input).value.strip()
        self._evaluating = True
        self.query_one("#eval-go", Button).disabled = True
        self.run_evaluation(job, task, k, limit, zero_shot, general)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate-run")
    def run_evaluation(
        self, job: JobChoice, task: str, k: int, limit: int | None, zero_shot: bool, general: bool
    ) -> None:
        from app.database import get_engine
        from app.evaluation.service import EvalRequest, evaluate

        request = EvalRequest(
            task=task,
            dataset=job.dataset_id,
            provider=job.provider,
            base_model=job.base_model,
            zero_shot=zero_shot,
            few_shot=k,
            job_ids=[job.id],
            general=general,
            limit=limit,
        )
        runs = evaluate(
            request,
            engine=get_engine(),
            on_event=lambda line: self.post_message(self.Progressed(line)),
        )
        self.post_message(self.Evaluated([r.id for r in runs], task))

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        self.query_one("#eval-progress", Static).update(message.line.strip())

    @on(Evaluated)
    def _evaluated(self, message: Evaluated) -> None:
        self.app.notify(
            f"{len(message.run_ids)} runs for task {message.task!r}; see the "
            "Models tab (m) to compare and promote.",
            title="Evaluated",
        )
        self.dismiss(message.run_ids)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        if event.worker.group == "evaluate-plan":
            self._plan_text(f"No estimate: {event.worker.error}", error=True)
        elif event.worker.group == "evaluate-run":
            self._evaluating = False
            self.query_one("#eval-go", Button).disabled = False
            self.query_one("#eval-progress", Static).update("evaluation failed; see the error")

    @on(Button.Pressed, "#eval-go")
    def _go(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#eval-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if not self._evaluating:
            self.dismiss(None)
