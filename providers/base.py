"""The provider contract: every fine-tuning backend implements `Provider`.

Required operations are abstract; optional ones have defaults that raise
`UnsupportedOperation`, with a capability flag saying whether the provider has them, so
the UI can grey out what a provider cannot do instead of failing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from db.storage import Storage
from providers.errors import UnsupportedOperation
from providers.pricing import PriceTable
from providers.recipe import (
    MappingLine,
    RecipeTranslation,
    TrainingRecipe,
    as_float,
    as_int,
    carry_epochs_and_batch,
    describe_rate,
    dropped_lora_lines,
    shown,
)
from providers.types import (
    Artifact,
    BaseModelInfo,
    ChatMessage,
    Completion,
    Deployment,
    HardwareOption,
    JobSpec,
    ProviderLifecycle,
    ProviderQuote,
    Refresh,
    RemoteJob,
    Upstream,
)


@dataclass(frozen=True)
class Capabilities:
    can_pause: bool = False
    can_resume_from_checkpoint: bool = False
    supports_dpo: bool = False
    supports_auto_hyperparameters: bool = False
    per_token_billing: bool = False
    runs_locally: bool = False
    batch_completion: bool = False
    """`Provider.complete_batch` answers many conversations at once (evaluation uses it
    instead of one call per example)."""
    methods: tuple[str, ...] = ("supervised",)

    # -- weights download (issue 11: hosted weights used on this machine) ---------------
    downloadable_weights: tuple[str, ...] = ()
    """The kinds of weights `Provider.download_weights` fetches (``adapter``,
    ``merged``). Default: none, the provider keeps its weights to itself."""
    loads_local_weights: bool = False
    """`Provider.complete` accepts a local model directory (a base model, a PEFT adapter
    on its base, or a merged model): ftm evaluates downloaded weights through a provider
    with this flag. Default: no."""


@dataclass(frozen=True)
class ProviderOption:
    """A provider setting declared as data, so the CLI and the launch wizard can build
    their fields from it."""

    name: str
    description: str
    type: type = str
    default: Any = None
    choices: tuple[Any, ...] | None = None


class NoSettings(BaseModel):
    """The settings model of a provider that has none: any key in its table is an error
    (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ProviderContext:
    """What ftm hands every provider besides its own settings (providers/ cannot read
    app settings): where ftm keeps its data, and its database."""

    home: Path
    jobs_dir: Path
    """Where job directories go (``<home>/jobs`` unless configured)."""
    database_url: str
    engine: Callable[[], Any] | None = None
    """Returns ftm's SQLAlchemy engine (made on first call), for providers that cache
    in the database."""
    storage: Storage | None = None
    """The storage root (`db.storage`): where job artifacts go so other machines find
    them, and how to resolve the references the database keeps."""


class Provider(ABC):
    """A fine-tuning backend.

    Construction must be cheap and must not touch the network or import heavy libraries:
    the registry instantiates providers to list them.
    """

    name: ClassVar[str]
    """Registry key, e.g. ``openai``, ``local``."""
    display_name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    options: ClassVar[tuple[ProviderOption, ...]] = ()
    simulated: bool = False
    """True when talking to the sandbox emulator: results are labelled simulated."""
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    """The pydantic model of this provider's settings: read from the ``[providers.NAME]``
    table of config.toml and from ``FTM_PROVIDERS__NAME__FIELD`` environment variables,
    validated by ftm (errors name the setting and where it came from), and handed to
    `from_config`. Document each field with a docstring. Never put a secret in it: ftm
    keeps settings out of the database, but keys belong in the environment or a key
    command read when the client is built. Default: no settings."""
    settings_alias: ClassVar[str | None] = None
    """An older top-level config table (``[NAME]``, ``FTM_NAME__FIELD``) still read as this
    provider's settings, under ``[providers.NAME]`` (which wins). New providers: None."""

    @classmethod
    def from_config(cls, config: BaseModel, context: ProviderContext) -> Provider:
        """An instance configured from its validated settings (an instance of
        `settings_model`) and ftm's context. Default: built with no arguments, for
        providers without settings; override to use them."""
        return cls()

    # -- data -------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, spec: JobSpec) -> JobSpec:
        """Make the spec's data available to the provider (upload files, copy to a job
        directory...) and return the spec with provider references filled in.

        Raises:
            ProviderError: the data could not be uploaded or was refused.
        """

    def validate_spec(self, spec: JobSpec) -> list[str]:
        """Problems that would make the provider refuse this spec; empty when fine."""
        return []

    def launch_warnings(self, spec: JobSpec) -> list[str]:
        """What the user should know before this spec is launched, beside its lifecycle
        (cutoffs and retirements, which ftm words from `lifecycle`): e.g. a setting the
        provider will round. Shown by the CLI and the wizard; the user may still go on.
        No network. Default: none."""
        return []

    # -- jobs -------------------------------------------------------------------------

    @abstractmethod
    def create(self, spec: JobSpec) -> RemoteJob:
        """Create the job. Must never create a second billed job for the same
        ``spec.ftm_job_uid`` (reconcile with `find_by_uid` after a lost response).

        Raises:
            ProviderError: the provider refused the job; nothing was created.
        """

    @abstractmethod
    def refresh(self, remote_id: str, events_cursor: str | None = None) -> Refresh:
        """Status, plus events, metrics and checkpoints new since ``events_cursor``."""

    def find_by_uid(self, ftm_job_uid: str) -> RemoteJob | None:
        """The job created for this ftm uid, if the provider has one."""
        return None

    @abstractmethod
    def cancel(self, remote_id: str) -> RemoteJob:
        """Cancel the job. Raises ProviderError if it already ended."""

    def pause(self, remote_id: str) -> RemoteJob:
        raise UnsupportedOperation(f"{self.display_name} cannot pause jobs")

    def resume(self, remote_id: str) -> RemoteJob:
        raise UnsupportedOperation(f"{self.display_name} cannot resume jobs")

    def resume_from_checkpoint(self, remote_id: str) -> RemoteJob:
        """Continue a failed job from its last checkpoint (providers with
        ``capabilities.can_resume_from_checkpoint``); the job goes back to queued."""
        raise UnsupportedOperation(f"{self.display_name} cannot resume a failed job")

    def list_remote_jobs(self, limit: int = 100) -> list[RemoteJob]:
        """Jobs that exist at the provider (for `ftm jobs import`)."""
        raise UnsupportedOperation(f"{self.display_name} cannot list its jobs")

    # -- models -----------------------------------------------------------------------

    @classmethod
    def lifecycle(cls) -> ProviderLifecycle:
        """When this provider stops taking jobs and when its models stop serving, as
        declared data (no network: read by the cost estimate, the launch plan, promotion).
        The default: nothing announced."""
        return ProviderLifecycle()

    @abstractmethod
    def list_base_models(self) -> list[BaseModelInfo]:
        """Models this provider can fine-tune, with sunset dates where known."""

    @abstractmethod
    def complete(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Completion:
        """One chat completion from ``model`` (a base or fine-tuned model), for evaluation."""

    def complete_batch(
        self,
        model: str,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        batch_size: int = 16,
    ) -> list[Completion]:
        """Completions for many conversations at once, in order (providers with
        ``capabilities.batch_completion``)."""
        raise UnsupportedOperation(f"{self.display_name} cannot complete in batches")

    def model_endpoint(self, *, simulated: bool = False) -> str | None:
        """The base URL an application calls this provider's fine-tuned models at (what
        `ftm models export` hands out; never a key). ``simulated``: the model was trained
        on the sandbox emulator, so it exists only there. Default: None, the model is
        loaded from disk or the provider has no public endpoint to name."""
        return None

    def close(self) -> None:
        """Release clients and processes. Optional: the default holds nothing to release."""
        return None

    # -- deployments: models that answer only once deployed (issue 11, Azure) ---------
    # Some providers serve a fine-tuned model only from a deployment made after the job
    # (Azure OpenAI): it must be created and become ready; its hourly fee is declared in
    # `pricing` (hosting_per_hour). Defaults: the model is called by its own id, nothing
    # to deploy.

    def deployment_for(self, model: str) -> str | None:
        """The name a client passes to reach ``model`` when it answers from a deployment
        (what an application needs besides `model_endpoint`). Where the name is ftm's
        own (Azure) no network; where the provider names its deployments (Together's
        endpoints) one lookup, and None when it cannot be reached. Default: None, the
        model is called by its own id."""
        return None

    def deploy(
        self,
        model: str,
        *,
        wait: bool = True,
        hardware: str | None = None,
        min_replicas: int = 1,
        max_replicas: int = 1,
    ) -> Deployment:
        """Create the deployment ``model`` answers from (once: asking again returns the
        same one, started again if it was stopped) and, with ``wait``, wait until it is
        ready. ``hardware``: one of `deployment_hardware`'s ids (None: the provider's
        configured default); replicas where the provider scales.

        Raises:
            UnsupportedOperation: the provider serves models without deployments.
            ProviderError: the deployment was refused or did not become ready.
        """
        raise UnsupportedOperation(f"{self.display_name} serves models without deployments")

    def deployment_kind(self, model: str) -> str:
        """How ``model`` is served: ``serverless`` (called by its id, billed per token:
        nothing to deploy), ``dedicated`` (a billed deployment the provider runs) or
        ``local`` (a server ftm runs on this machine). No network. Default: serverless."""
        return "serverless"

    def deployment_hardware(self, model: str) -> list[HardwareOption]:
        """The hardware ``model`` can be deployed on, with its price per hour (Together's
        ``/hardware``). Default: none to choose from."""
        return []

    def deployment_status(self, deployment: Deployment) -> Deployment:
        """The deployment as the provider sees it now (its state may have moved).

        Raises:
            ProviderError: the provider could not be asked.
        """
        raise UnsupportedOperation(f"{self.display_name} serves models without deployments")

    def stop_deployment(self, deployment: Deployment) -> Deployment:
        """Stop it (billing stops; it can be started again by `deploy`). Stopping a
        stopped deployment is not an error.

        Raises:
            ProviderError: the provider refused or could not be reached.
        """
        raise UnsupportedOperation(f"{self.display_name} serves models without deployments")

    def delete_deployment(self, deployment: Deployment) -> None:
        """Delete it for good. Deleting one already gone is not an error.

        Raises:
            ProviderError: the provider refused or could not be reached.
        """
        raise UnsupportedOperation(f"{self.display_name} serves models without deployments")

    def upstream(self, model: str, deployment: Deployment | None = None) -> Upstream | None:
        """Where the gateway forwards an OpenAI-compatible chat request for ``model``
        (served from ``deployment`` when it has one): base URL, the model name to send,
        auth headers. No network. Default: None, no OpenAI-compatible endpoint; the
        gateway answers through `complete` instead (no token-by-token streaming)."""
        return None

    def configured(self) -> bool:
        """Whether its settings say where to send jobs (no network, no key lookup): a new
        launch does not start on a provider that cannot be reached without more set-up.
        Default: True, nothing to configure."""
        return True

    # -- contract: pricing, default method, extra commands, test harness ----------------
    # Facts the core asks for instead of naming a provider (issue 11). Each has a default
    # that a provider without the fact can keep.

    @classmethod
    def pricing(cls) -> PriceTable | None:
        """What this provider charges, as declared data (no network): per-token training
        and inference prices per model with an optional hourly hosting fee (basis
        ``tokens``), or ``hardware`` when ftm prices it by the hour of the GPU it runs on.
        Cost estimates, the comparison table and ``ftm prices`` read it; a user prices
        file overrides figures as ``[NAME.models."ID"]``. Default: None, no prices
        declared (the provider is left out of estimates)."""
        return None

    @classmethod
    def default_method(cls) -> str:
        """The training method a launch or a migration uses when none is given. Must be
        one of ``capabilities.methods``. Default: the first of them."""
        return cls.capabilities.methods[0]

    @classmethod
    def cli_commands(cls) -> tuple[str, ...]:
        """Extra ``ftm`` commands this provider adds, as ``"module:attribute"`` import
        paths of click commands or groups (``ftm local`` ...). Named as strings so ftm
        imports them only when one is run or help is listed, and so a command module may
        live outside providers/ (providers never import app/). Default: none."""
        return ()

    @classmethod
    def contract_harness(cls) -> str | None:
        """For ftm's contract test suite: the ``"module:attribute"`` import path of a
        context-manager factory ``harness(workdir: Path)`` that yields a
        `ContractHarness` (an instance wired to a test backend, and a spec it can run).
        Default: None (the suite then checks only the declared data)."""
        return None

    # -- weights download (issue 11: hosted weights used on this machine) ---------------

    def download_weights(self, remote_id: str, dest: Path, kind: str = "adapter") -> Artifact:
        """Download the finished job's weights into the directory ``dest`` in Hugging
        Face's layout: ``adapter``, a PEFT adapter (adapter_config.json +
        adapter_model.safetensors); ``merged``, the complete model (config.json +
        safetensors). Atomic: ``dest`` is written only once the files have been checked
        (providers/weights_layout.py), replacing a previous download; a failure leaves it
        as it was. Returns the ``Artifact`` (kind, ``dest`` as uri, what was checked in
        meta). For the kinds in ``capabilities.downloadable_weights``.

        Default: the provider offers no download.

        Raises:
            UnsupportedOperation: no weights of that kind to download.
            ProviderError: the download failed or the files were damaged.
        """
        raise UnsupportedOperation(f"{self.display_name} offers no download of {kind} weights")

    # -- migration: training recipes (`ftm migrate`) -----------------------------------

    @classmethod
    def recipe_from_job(
        cls, method: str, hyperparameters: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
    ) -> TrainingRecipe:
        """What one of this provider's jobs was trained with, in neutral terms: its
        ``method``, the hyperparameters the provider reported (``Job.hyperparameters``)
        and the spec ftm launched it with (``Job.spec``, a `JobSpec` as a dict). No
        network. Default: the common `Hyperparameters` fields (epochs, batch size, an
        absolute learning rate, a learning-rate multiplier on this provider's own scale);
        override to read native knobs (LoRA settings...)."""
        reported = dict(hyperparameters or {})
        asked = dict((spec or {}).get("hyperparameters") or {})

        def pick(*keys: str) -> Any:
            for source in (reported, asked):
                for key in keys:
                    if source.get(key) not in (None, "auto"):
                        return source[key]
            return None

        multiplier = as_float(pick("learning_rate_multiplier"))
        return TrainingRecipe(
            method="dpo" if method == "dpo" else "supervised",
            epochs=as_int(pick("n_epochs", "epochs")),
            batch_size=as_int(pick("batch_size")),
            learning_rate=as_float(pick("learning_rate")),
            learning_rate_multiplier=multiplier,
            multiplier_scale=cls.name if multiplier is not None else None,
            seed=as_int((spec or {}).get("seed")),
            source=cls.name,
        )

    @classmethod
    def translate_recipe(cls, recipe: TrainingRecipe) -> RecipeTranslation:
        """``recipe`` as a job on this provider: the method, `Hyperparameters` fields and
        options to launch with, and one `MappingLine` per setting saying what it became
        and why (printed by `ftm migrate` before anything is launched). No network.

        Default (provider-neutral): the recipe's method when this provider lists it (else
        its `default_method`); epochs and batch size carried; a learning-rate multiplier
        carried only from a provider on the same scale; an absolute rate and LoRA
        settings not carried (this default knows no knob for them), each said so.
        Override where the provider has native knobs (an absolute rate, LoRA rank...)."""
        methods = cls.capabilities.methods
        method = recipe.method if recipe.method in methods else cls.default_method()
        hp, lines = carry_epochs_and_batch(recipe)
        same_scale = recipe.multiplier_scale == cls.name
        if recipe.learning_rate_multiplier is not None and same_scale:
            hp["learning_rate_multiplier"] = recipe.learning_rate_multiplier
            lines.append(
                MappingLine(
                    "learning rate",
                    f"x{shown(recipe.learning_rate_multiplier)}",
                    f"x{shown(recipe.learning_rate_multiplier)}",
                    "multiplier on the same base rate",
                )
            )
        elif recipe.learning_rate is not None or recipe.learning_rate_multiplier is not None:
            lines.append(
                MappingLine(
                    "learning rate",
                    describe_rate(recipe),
                    "auto",
                    f"{cls.display_name} declares no learning-rate knob this rate maps to",
                )
            )
        lines += dropped_lora_lines(recipe, f"{cls.display_name} declares no LoRA settings")
        return RecipeTranslation(method, hp, {}, tuple(lines))

    # -- provider's own quote (issue 11: Together's estimate-price) ------------------

    def quote(self, spec: JobSpec) -> ProviderQuote | None:
        """The provider's own price for a PREPARED spec (its files uploaded), asked after
        `prepare` and before `create`: shown beside ftm's estimate, and a quote with
        ``allowed_to_proceed`` False stops the launch with its reason, nothing created.
        Default: None, the provider quotes nothing (ftm's estimate stands alone).

        Raises:
            ProviderError: the quote could not be had (the launch fails, nothing created).
        """
        return None

    # -- training defaults: what "auto" epochs means (issue 11: Together) ---------------

    @classmethod
    def auto_epochs(cls, n_examples: int) -> int | None:
        """How many epochs this provider trains when a job asks for ``auto``, for a
        training split of ``n_examples`` (cost estimates price that many). No network.
        Default: None, ftm's rule for services that choose by the data's size
        (OpenAI's documented rule, `app.costs.hosted.auto_epochs`)."""
        return None


@dataclass(frozen=True)
class ContractHarness:
    """What a provider's `Provider.contract_harness` yields to the contract test suite."""

    provider: Provider
    """An instance connected to a backend safe to create jobs on (an emulator, a tiny
    model)."""
    spec: JobSpec
    """A job it can run; the suite creates, refreshes and cancels it."""
