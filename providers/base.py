"""The provider contract: every fine-tuning backend implements `Provider`.

Required operations are abstract; optional ones have defaults that raise
`UnsupportedOperation`, with a capability flag saying whether the provider has them, so
the UI can grey out what a provider cannot do instead of failing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from providers.errors import UnsupportedOperation
from providers.types import (
    BaseModelInfo,
    ChatMessage,
    Completion,
    JobSpec,
    ProviderLifecycle,
    ProviderQuote,
    Refresh,
    RemoteJob,
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
