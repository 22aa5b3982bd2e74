"""Provider-neutral value types shared by every provider, the poller and the UI."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Auto = Literal["auto"]


class JobStatus(enum.StrEnum):
    """One normalized state machine for jobs of every provider."""

    PENDING = "pending"  # recorded by ftm, nothing sent yet
    UPLOADING = "uploading"
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    def can_move_to(self, new: JobStatus) -> bool:
        """Whether the state machine allows ``self -> new`` (staying put is allowed)."""
        return new == self or new in _ALLOWED[self]

    @property
    def can_resume_from(self) -> bool:
        """Whether a job in this state may be reopened to continue from its last checkpoint.

        This is the one way out of a terminal state, and it is not a `can_move_to` move:
        only ``FAILED`` and ``CANCELLED`` qualify (a user who stopped a run may want to
        continue it), the job goes back to `RESUMED_STATUS` (queued), and only
        `db.repository.reopen_for_resume` makes the move, on an explicit user request to a
        provider with ``capabilities.can_resume_from_checkpoint``. Every other path (pollers,
        workers, `set_status`) keeps terminal states terminal.
        """
        return self in (JobStatus.FAILED, JobStatus.CANCELLED)


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
RESUMED_STATUS = JobStatus.QUEUED
"""Where a job resumed from failure or cancel (`JobStatus.can_resume_from`) goes back to."""

_ENDINGS = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
# Forward moves may skip states (a poll can miss a short-lived one); backward moves only
# where a provider really goes back: resume returns a paused job to queued or running, and
# a failed or cancelled job can be resumed from its checkpoint, outside this table (see
# `JobStatus.can_resume_from` and `db.repository.reopen_for_resume`).
_ALLOWED: dict[JobStatus, set[JobStatus]] = {
    JobStatus.PENDING: {
        JobStatus.UPLOADING,
        JobStatus.VALIDATING,
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.PAUSED,
        *_ENDINGS,
    },
    JobStatus.UPLOADING: {JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING, *_ENDINGS},
    JobStatus.VALIDATING: {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, *_ENDINGS},
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.PAUSED, *_ENDINGS},
    JobStatus.RUNNING: {JobStatus.PAUSED, *_ENDINGS},
    JobStatus.PAUSED: {JobStatus.QUEUED, JobStatus.RUNNING, *_ENDINGS},
    JobStatus.SUCCEEDED: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELLED: set(),
}


class InvalidTransition(ValueError):
    """A status change the state machine forbids (e.g. out of a terminal state)."""


@dataclass(frozen=True)
class Hyperparameters:
    """Hyperparameters common to providers; ``"auto"`` lets the provider choose.

    Provider-specific ones (LoRA rank, scheduler...) go in ``JobSpec.options``.
    """

    n_epochs: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = "auto"
    learning_rate: float | None = None  # absolute LR, for local training
    beta: float | Auto = "auto"  # DPO only


@dataclass(frozen=True)
class JobSpec:
    """What to train: everything a provider needs to create a job."""

    name: str
    base_model: str
    train_path: str
    """JSONL in chat (or preference) form."""
    validation_path: str | None = None
    method: str = "supervised"
    """supervised | dpo for hosted; lora | qlora | full (sft) or dpo for local."""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    suffix: str | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Provider-specific settings (validated by the provider's `validate_spec`)."""
    ftm_job_uid: str = ""
    """ftm's job uid, attached to the remote job as metadata."""
    dataset_hash: str | None = None


@dataclass(frozen=True)
class JobError:
    code: str | None
    message: str
    param: str | None = None


@dataclass(frozen=True)
class JobEvent:
    id: str
    """The provider's event id; the database deduplicates on it."""
    created_at: datetime
    message: str
    level: str = "info"
    type: str = "message"
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class MetricPoint:
    step: int
    train_loss: float | None = None
    eval_loss: float | None = None
    train_accuracy: float | None = None
    eval_accuracy: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class Checkpoint:
    step: int
    model_ref: str
    """Checkpoint model id (hosted) or directory (local)."""
    id: str | None = None
    metrics: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Artifact:
    kind: str  # adapter | merged | result_file | log
    uri: str
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class RemoteJob:
    """A job as the provider reports it, normalized. Returned by create and refresh."""

    remote_id: str
    status: JobStatus
    raw_status: str | None = None
    """The provider's own status string (kept when it is one we do not know)."""
    fine_tuned_model: str | None = None
    hyperparameters: dict[str, Any] | None = None
    trained_tokens: int | None = None
    error: JobError | None = None
    step: int | None = None
    total_steps: int | None = None
    estimated_finish: datetime | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, str] | None = None
    base_model: str | None = None
    billed_usd: float | None = None
    """What the provider itself says the job cost so far (e.g. Together's ``total_price``);
    None when it reports no amount. Preferred over tokens x catalog price for the actual."""
    ftm_uid_prefix: str | None = None
    """The start of the ftm job uid this job carries, for a provider that keeps only part
    of it (Together: 16 hex digits in the suffix) and so cannot name it in ``metadata``:
    `ftm jobs import` gives a lost launch back to the one row whose uid starts with it."""


@dataclass(frozen=True)
class Refresh:
    """What one refresh learned: the job now, and only what is new since the cursor."""

    job: RemoteJob
    events: list[JobEvent] = field(default_factory=list)
    """New events, oldest first."""
    events_cursor: str | None = None
    """Pass back next time to fetch only newer events."""
    metrics: list[MetricPoint] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderLifecycle:
    """When a provider stops taking new jobs and when its models stop serving, as the
    provider declares them (`Provider.lifecycle`). ``app.lifecycle`` is the one reader:
    every caller asks it, never these fields directly."""

    job_creation_cutoff: date | None = None
    """The last day new jobs are accepted; None when no end is announced."""
    retirements: Mapping[str, date] = field(default_factory=dict)
    """Base model id -> the day it (and every model tuned on it) stops serving."""
    warn_days: int = 60
    """Warn this many days ahead of a cutoff or a retirement."""
    source: str = ""
    """Where the dates come from (an announcement, a deprecations page)."""

    def training_cutoff(self, base_model: str) -> date | None:
        """The last day a job on ``base_model`` is accepted. Default: the service's
        `job_creation_cutoff`; a provider that ends training per model overrides it."""
        return self.job_creation_cutoff

    def base_model(self, model: str) -> str:
        """The base model whose retirement ``model`` follows. A provider whose tuned
        models carry their base in the name (or whose names have aliases) overrides it."""
        return model


@dataclass(frozen=True)
class BaseModelInfo:
    """A model the provider can fine-tune."""

    id: str
    methods: tuple[str, ...] = ("supervised",)
    sunset: str | None = None
    """ISO date after which the base model is retired, when known."""
    context_limit: int | None = None
    notes: str | None = None


@dataclass(frozen=True)
class ProviderQuote:
    """The provider's own price for a job before it is created (`Provider.quote`)."""

    total_usd: float | None
    """What the provider expects to charge; None when it gave no figure."""
    allowed_to_proceed: bool = True
    """False: the provider will not run it (e.g. over the account's credit limit)."""
    reason: str | None = None
    """Why it may not proceed, in words to show the user."""
    user_limit_usd: float | None = None
    train_tokens: int | None = None
    eval_tokens: int | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class Completion:
    """One chat completion, for evaluation."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    model: str | None = None


@dataclass(frozen=True)
class Deployment:
    """A served copy of a model, for providers whose fine-tuned models answer only once
    deployed (`Provider.deploy`)."""

    name: str
    """What a client passes as the model to reach it."""
    model: str
    state: str
    """The provider's provisioning state (e.g. Creating, Succeeded, Failed)."""
    remote_id: str | None = None
    """The provider's id for it (Together's endpoint id), when it has one besides
    ``name``; None where the name is the id (Azure) or for a local server."""
    endpoint_url: str | None = None
    """Where it answers, when that is not the provider's usual endpoint (a local
    server's ``http://127.0.0.1:PORT/v1``); None: `Provider.model_endpoint`."""
    hardware: str | None = None
    """The hardware it runs on, in the provider's words (a Together hardware id, a
    local device)."""
    usd_per_hour: float | None = None
    """What it costs per hour while running (all its minimum replicas), when the
    provider says; None: billed per token, or unknown."""

    @property
    def ready(self) -> bool:
        return self.state.lower() == "succeeded"

    @property
    def failed(self) -> bool:
        return self.state.lower() in ("failed", "canceled", "cancelled")


@dataclass(frozen=True)
class HardwareOption:
    """One hardware configuration a model can be deployed on (`Provider.deployment_hardware`)."""

    id: str
    """The provider's id, passed back to `Provider.deploy` as ``hardware``."""
    description: str
    usd_per_hour: float | None
    """Per replica per hour, as the provider prices it; None when not priced."""
    available: bool = True


@dataclass(frozen=True)
class Upstream:
    """Where the gateway (`ftm serve`) forwards an OpenAI-compatible chat request for a
    model: POST ``{base_url}/chat/completions`` with ``model`` replaced by ``model`` and
    these ``headers`` (the provider's auth) and ``params`` (query, e.g. Azure's
    api-version). Carries a secret in ``headers``: never log or store it."""

    base_url: str
    model: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the headers hold the provider's key
        return f"Upstream(base_url={self.base_url!r}, model={self.model!r})"
