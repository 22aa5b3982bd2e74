"""The launch wizard: dataset, provider, base model, method and hyperparameters, a live
cost and time preview, and a confirmation that states the spend before anything starts.

Everything slow runs in thread workers that post messages back: reading datasets,
loading the provider registry, listing base models (a network call for hosted
providers), the cost preview (debounced while the user types) and the launch itself.
The form logic (parsing, validation) lives in `launch_form`, testable without Textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Collapsible, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from app.tui.screens import launch_backend as backend
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.launch_form import (
    AUTO,
    DatasetChoice,
    LaunchForm,
    is_retired,
    methods_offered,
    sunset_warning,
    validate_form,
)
from providers.base import ProviderOption
from providers.types import BaseModelInfo

PREVIEW_DEBOUNCE_S = 0.4
HYPERPARAMETER_FIELDS = ("n_epochs", "batch_size", "learning_rate_multiplier")
_OPTION_PREFIX = "option-"


class LaunchWizard(ModalScreen[int | None]):
    """Collects a job's settings and launches it; dismisses with the new job's id."""

    AREA = "Launch wizard"
    DEFAULT_CSS = """
    LaunchWizard { background: $background 60%; }
    LaunchWizard #wizard {
        width: 100%; height: 100%; border: thick $primary; background: $surface;
    }
    LaunchWizard #wizard-title { text-style: bold; padding: 0 1; background: $primary-muted; }
    LaunchWizard #wizard-body { height: 1fr; }
    LaunchWizard #wizard-form { width: 1fr; padding: 0 1; }
    LaunchWizard #wizard-preview {
        width: 36; padding: 0 1; border-left: solid $primary; height: 100%;
    }
    LaunchWizard #preview-title { text-style: bold; }
    LaunchWizard .field-label { margin: 1 0 0 0; color: $text-muted; }
    LaunchWizard .field-error { color: $text-error; display: none; }
    LaunchWizard .field-info { color: $text-muted; }
    LaunchWizard .field-info.-error { color: $text-error; }
    LaunchWizard .field-info.-warning, LaunchWizard .field-warning { color: $text-warning; }
    LaunchWizard Select, LaunchWizard Input { width: 100%; }
    LaunchWizard #common-hyperparameters { height: auto; }
    LaunchWizard #wizard-buttons { height: 3; padding: 0 1; }
    LaunchWizard #wizard-status { width: 1fr; height: 3; content-align: left middle; }
    LaunchWizard #wizard-buttons Button { margin: 0 0 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "launch", "Launch…", id="wizard.launch"),
        Binding("escape", "cancel", "Cancel", id="wizard.cancel"),
        Binding("f1", "help", "Help", id="wizard.help"),
    ]

    # -- messages (past tense: what a worker found) -------------------------------------

    @dataclass
    class DatasetsLoaded(Message):
        datasets: list[DatasetChoice]

    @dataclass
    class ProvidersLoaded(Message):
        names: list[str]
        broken: dict[str, str]
        default: str | None = None

    @dataclass
    class BaseModelsLoaded(Message):
        provider: str
        models: list[BaseModelInfo]
        error: str | None = None

    @dataclass
    class PreviewComputed(Message):
        request_id: int
        preview: backend.Preview | None
        error: str | None = None

    @dataclass
    class JobLaunched(Message):
        job_id: int
        name: str

    def __init__(self, dataset_id: int | None = None, *, today: date | None = None) -> None:
        super().__init__()
        self.initial_dataset_id = dataset_id
        self.today = today
        """The day the launch plan's warnings are for (None: today)."""
        self.form = LaunchForm()
        self._datasets: list[DatasetChoice] = []
        self._preview_timer: Timer | None = None
        self._preview_request = 0
        self.preview: backend.Preview | None = None
        self._launching = False
        self._selected_model: str | None = None
        self._typed_model = ""
        self._methods_shown: list[str] = []
        """The method choices on screen (the provider's, narrowed to the base model's)."""

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="wizard"):
            yield Static("New fine-tuning job", id="wizard-title")
            with Horizontal(id="wizard-body"):
                with VerticalScroll(id="wizard-form"):
                    yield from _field("Dataset", Select([], id="dataset", prompt="loading…"))
                    yield Static("", id="dataset-info", classes="field-info")
                    yield from _field("Provider", Select([], id="provider", prompt="loading…"))
                    yield Static("", id="provider-info", classes="field-info")
                    yield from _field(
                        "Base model", Select([], id="base_model", prompt="choose a provider")
                    )
                    yield Input(
                        id="base_model_other", placeholder="or type a model id or directory"
                    )
                    yield Static("", id="base-model-warning", classes="field-warning")
                    yield from _field("Method", Select([], id="method", prompt="choose a provider"))
                    yield from _field("Job name", Input(id="name", placeholder="e.g. tickets-v2"))
                    with Vertical(id="common-hyperparameters"):
                        yield from _field("Epochs", Input(AUTO, id="n_epochs"))
                        yield from _field("Batch size", Input(AUTO, id="batch_size"))
                        yield from _field(
                            "Learning-rate multiplier", Input(AUTO, id="learning_rate_multiplier")
                        )
                    with Collapsible(title="Provider options", id="options-section"):
                        yield Vertical(id="options")
                with Vertical(id="wizard-preview"):
                    yield Static("Cost and time", id="preview-title")
                    yield Static(
                        "Choose a dataset, provider and base model.",
                        id="preview-body",
                        markup=False,
                    )  # provider messages may hold [brackets]
            with Horizontal(id="wizard-buttons"):
                yield Static("", id="wizard-status")
                yield Button("Cancel (esc)", id="wizard-cancel")
                yield Button("Launch… (ctrl+s)", id="wizard-launch", variant="warning")

    def on_mount(self) -> None:
        self.load_datasets()
        self.load_providers()
        self._show_problems({})

    # -- loading ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-datasets")
    def load_datasets(self) -> None:
        self.post_message(self.DatasetsLoaded(backend.dataset_choices()))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-providers")
    def load_providers(self) -> None:
        from app.jobs.providers import default_provider

        names, broken = backend.provider_names()
        self.post_message(self.ProvidersLoaded(names, broken, default_provider(names)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-base-models")
    def load_base_models(self, provider: str) -> None:
        try:
            models = backend.base_models(provider)
        except backend.EXPECTED_ERRORS as exc:
            self.post_message(self.BaseModelsLoaded(provider, [], error=str(exc)))
            return
        self.post_message(self.BaseModelsLoaded(provider, models))

    @on(DatasetsLoaded)
    def _datasets_loaded(self, message: DatasetsLoaded) -> None:
        self._datasets = message.datasets
        select = self.query_one("#dataset", Select)
        select.set_options([(d.label, d.id) for d in message.datasets])
        select.prompt = "choose a dataset" if message.datasets else "no datasets: ftm data add FILE"
        wanted = self.initial_dataset_id
        if wanted is None and message.datasets:
            wanted = message.datasets[0].id
        if wanted is not None and any(d.id == wanted for d in message.datasets):
            select.value = wanted
        self._changed()

    @on(ProvidersLoaded)
    def _providers_loaded(self, message: ProvidersLoaded) -> None:
        select = self.query_one("#provider", Select)
        select.set_options([(name, name) for name in message.names])
        select.prompt = "choose a provider"
        if message.broken:
            broken = "; ".join(f"{k}: {v}" for k, v in message.broken.items())
            self.query_one("#provider-info", Static).update(f"Not loaded: {broken}")
        if message.default:
            select.value = message.default

    @on(BaseModelsLoaded)
    def _base_models_loaded(self, message: BaseModelsLoaded) -> None:
        if message.provider != self.form.provider:
            return  # the user switched providers meanwhile
        self.form.base_models = message.models
        select = self.query_one("#base_model", Select)
        select.set_options([(_model_label(m), m.id) for m in message.models])
        if message.error:
            select.prompt = "could not list models"
            self._set_error("base_model", f"Could not list base models: {message.error}")
            return
        select.prompt = "choose a base model"
        usable = [m for m in message.models if not _retired(m)]
        if usable:
            select.value = usable[0].id
        self._changed()

    # -- reacting to input ----------------------------------------------------------------

    @on(Select.Changed, "#provider")
    def _provider_changed(self, event: Select.Changed) -> None:
        name = None if event.value is Select.NULL else str(event.value)
        if name == self.form.provider:
            return
        self.form.provider = name
        self.form.base_model = self._typed_model.strip() or None
        self._selected_model = None
        self.form.base_models = []
        self.form.options = {}
        base = self.query_one("#base_model", Select)
        base.set_options([])
        if name is None:
            self._changed()
            return
        base.prompt = "loading models…"
        caps, options, description = backend.provider_info(name)
        self.form.capabilities = caps
        self.form.provider_options = options
        self.query_one("#provider-info", Static).update(description)
        method = self.query_one("#method", Select)
        method.set_options([(m, m) for m in caps.methods])
        self._methods_shown = list(caps.methods)
        from app.jobs.providers import default_method_of  # the provider's declared default

        method.value = default_method_of(name) or (caps.methods[0] if caps.methods else Select.NULL)
        self._build_options(options)
        # Providers without "auto" take their defaults from their own options (shown open).
        common = caps.supports_auto_hyperparameters
        self.query_one("#common-hyperparameters").display = common
        self.query_one("#options-section", Collapsible).collapsed = common
        self.load_base_models(name)
        self._changed()

    def _build_options(self, options: tuple[ProviderOption, ...]) -> None:
        box = self.query_one("#options", Vertical)
        box.remove_children()
        widgets = []
        for option in options:
            widgets.append(Label(f"{option.name}: {option.description}", classes="field-label"))
            placeholder = str(option.default) if option.default is not None else ""
            if option.choices:
                choices = [(str(c), str(c)) for c in option.choices]
                widgets.append(
                    Select(
                        choices,
                        value=str(option.default),
                        allow_blank=False,
                        id=f"{_OPTION_PREFIX}{option.name}",
                        classes="option-field",
                    )
                )
            else:
                widgets.append(
                    Input(
                        placeholder=placeholder,
                        id=f"{_OPTION_PREFIX}{option.name}",
                        classes="option-field",
                    )
                )
            widgets.append(
                Static("", id=f"error-{_OPTION_PREFIX}{option.name}", classes="field-error")
            )
        box.mount_all(widgets)
        self.query_one("#options-section", Collapsible).title = f"Provider options ({len(options)})"

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        widget_id = event.select.id or ""
        value = None if event.value is Select.NULL else event.value
        if widget_id == "dataset":
            self.form.dataset = next((d for d in self._datasets if d.id == value), None)
            self._show_dataset()
            if self.form.dataset and not self.query_one("#name", Input).value:
                self.query_one("#name", Input).value = f"{self.form.dataset.name}-ft"
        elif widget_id == "base_model":
            self._selected_model = None if value is None else str(value)
            self._update_base_model()
            return
        elif widget_id == "method":
            self.form.method = None if value is None else str(value)
        elif widget_id.startswith(_OPTION_PREFIX):
            self.form.options[widget_id.removeprefix(_OPTION_PREFIX)] = str(value or "")
        else:
            return
        self._changed()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        widget_id = event.input.id or ""
        if widget_id == "name":
            self.form.name = event.value
        elif widget_id == "base_model_other":
            self._typed_model = event.value
            self._update_base_model()
            return
        elif widget_id in HYPERPARAMETER_FIELDS:
            setattr(self.form, widget_id, event.value)
        elif widget_id.startswith(_OPTION_PREFIX):
            self.form.options[widget_id.removeprefix(_OPTION_PREFIX)] = event.value
        else:
            return
        self._changed()

    def _update_base_model(self) -> None:
        """A typed model id or directory wins over the one chosen from the list."""
        self.form.base_model = self._typed_model.strip() or self._selected_model
        warning = sunset_warning(self.form.base_model_info())
        self.query_one("#base-model-warning", Static).update(f"⚠ {warning}" if warning else "")
        self._offer_methods()
        self._changed()

    def _offer_methods(self) -> None:
        """Narrow the method choices to what the chosen base model supports."""
        caps = self.form.capabilities
        if caps is None:
            return
        offered = methods_offered(caps.methods, self.form.base_model_info())
        method = self.query_one("#method", Select)
        if offered == self._methods_shown:
            return
        current = self.form.method
        self._methods_shown = offered
        method.set_options([(m, m) for m in offered])
        if current in offered:
            method.value = current

    def _show_dataset(self) -> None:
        d = self.form.dataset
        info = self.query_one("#dataset-info", Static)
        if d is None:
            info.update("")
            return
        verdict = {"ok": "valid", "warnings": "valid, with warnings", "errors": "has errors"}
        info.update(f"{d.format}; {verdict.get(d.verdict, d.verdict)}")
        info.set_class(d.verdict == "errors", "-error")
        info.set_class(d.verdict == "warnings", "-warning")

    def _changed(self) -> None:
        """Re-validate now; recompute the preview once the user pauses."""
        problems = validate_form(self.form)
        self._show_problems(problems)
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DEBOUNCE_S, self._request_preview)

    def _show_problems(self, problems: dict[str, str]) -> None:
        for error in self.query(".field-error"):
            field_id = (error.id or "").removeprefix("error-")
            key = (
                "option:" + field_id.removeprefix(_OPTION_PREFIX)
                if field_id.startswith(_OPTION_PREFIX)
                else field_id
            )
            text = problems.get(key, "")
            error.update(text)
            error.display = bool(text)
        count = len(problems)
        self.query_one("#wizard-status", Static).update(
            "ready to launch" if not count else f"{count} field{'s' * (count > 1)} to fix"
        )

    def _set_error(self, field_id: str, text: str) -> None:
        error = self.query_one(f"#error-{field_id}", Static)
        error.update(text)
        error.display = True

    # -- preview --------------------------------------------------------------------------

    def _request_preview(self) -> None:
        form = self.form
        if form.dataset is None or form.provider is None or form.base_model is None:
            return
        try:
            hyper = form.hyperparameters()
            options = form.option_values()
        except ValueError:
            return  # the inline errors already say what to fix
        self._preview_request += 1
        self.query_one("#preview-body", Static).update("computing…")
        self.compute_preview(
            self._preview_request,
            backend.PreviewRequest(
                dataset_id=form.dataset.id,
                provider=form.provider,
                base_model=form.base_model,
                method=form.method or "supervised",
                hyperparameters=hyper,
                options=options,
                name=form.name.strip() or None,
                today=self.today,
            ),
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-preview")
    def compute_preview(self, request_id: int, request: backend.PreviewRequest) -> None:
        try:
            preview = backend.compute_preview(request)
        except backend.EXPECTED_ERRORS as exc:
            self.post_message(self.PreviewComputed(request_id, None, str(exc)))
            return
        self.post_message(self.PreviewComputed(request_id, preview))

    @on(PreviewComputed)
    def _preview_computed(self, message: PreviewComputed) -> None:
        if message.request_id != self._preview_request:
            return  # an older request; a newer one is on its way
        body = self.query_one("#preview-body", Static)
        self.preview = message.preview
        if message.preview is None:
            body.update(f"No estimate: {message.error}")
            return
        body.update(message.preview.render())

    # -- launching ------------------------------------------------------------------------

    def action_launch(self) -> None:
        if self._launching:
            return
        problems = validate_form(self.form)
        self._show_problems(problems)
        if problems:
            first = next(iter(problems))
            self.notify(problems[first], title="Fix the form first", severity="warning")
            target = first.replace("option:", _OPTION_PREFIX)
            if self.query(f"#{target}"):
                self.query_one(f"#{target}").focus()
            return
        form = self.form
        preview = self.preview
        if preview is not None and preview.problems:
            # The same refusal `ftm launch` gives, before the confirmation is asked.
            self.notify(
                "; ".join(preview.problems),
                title="Cannot launch this job",
                severity="error",
                timeout=10,
                markup=False,
            )
            return
        spend = preview.training_cost_usd if preview else None
        simulated = preview.simulated if preview else False
        details = (
            f"{form.method} on {form.base_model} via {form.provider}\n"
            f"dataset {form.dataset.name}: {form.dataset.n_train} training examples"
        )
        if preview is not None and preview.warnings:
            details += "".join(f"\n⚠ {w}" for w in preview.warnings)
        note = preview.spend_note if preview else "No estimate available for this option."
        if simulated:
            note = (note + "\n" if note else "") + "Sandbox: nothing is billed."
        self.app.push_screen(
            ConfirmScreen(
                f"Launch job {form.name!r}?",
                details,
                spend_usd=spend,
                spend_note=note,
                confirm_label="Launch",
            ),
            self._confirmed,
        )

    def _confirmed(self, yes: bool | None) -> None:
        if not yes:
            self.query_one("#wizard-status", Static).update("not launched")
            return
        self._launching = True
        self.query_one("#wizard-launch", Button).disabled = True
        self.query_one("#wizard-status", Static).update("launching…")
        form = self.form
        self.launch(
            backend.LaunchRequest(
                name=form.name.strip(),
                dataset_id=form.dataset.id,
                provider=form.provider,
                base_model=form.base_model,
                method=form.method or "supervised",
                hyperparameters=form.hyperparameters(),
                options=form.option_values(),
                estimate=self.preview.raw if self.preview else None,
            )
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-launch")
    def launch(self, request: backend.LaunchRequest) -> None:
        job_id = backend.launch(request)
        self.post_message(self.JobLaunched(job_id, request.name))

    @on(JobLaunched)
    def _job_launched(self, message: JobLaunched) -> None:
        self.app.notify(f"Job {message.name!r} launched (id {message.job_id}).", title="Launched")
        self.dismiss(message.job_id)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        # The app reports the error itself; here the form is made usable again.
        if event.worker.group == "wizard-launch" and event.state == WorkerState.ERROR:
            self._launching = False
            self.query_one("#wizard-launch", Button).disabled = False
            self.query_one("#wizard-status", Static).update("launch failed; see the error")

    # -- other actions ---------------------------------------------------------------------

    @on(Button.Pressed, "#wizard-launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#wizard-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if not self._launching:
            self.dismiss(None)

    def action_help(self) -> None:
        from app.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self))


def _field(label: str, widget: Any) -> ComposeResult:
    yield Label(label, classes="field-label")
    yield widget
    yield Static("", id=f"error-{widget.id}", classes="field-error")


def _model_label(model: BaseModelInfo) -> str:
    if model.sunset:
        mark = "retired" if _retired(model) else f"retires {model.sunset[:10]}"
        return f"{model.id}  ⚠ {mark}"
    return model.id


def _retired(model: BaseModelInfo) -> bool:
    return is_retired(model)
