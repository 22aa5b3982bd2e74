"""SQLModel tables. Portable SQL only (JSON, not SQLite-specific types), so a PostgreSQL
URL works the same. Schema changes go through a new migration in db/migrations/versions.

Business logic does not live here: no query methods on the classes (see db/repository.py
and app/ use-cases).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json(**kw: Any) -> Any:
    return Field(default=None, sa_column=Column(sa.JSON, **kw))


def _ts() -> Any:
    """A nullable timezone-aware timestamp."""
    return Field(default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=True))


# --------------------------------------------------------------------------- datasets


# Counts, sizes and parameter counts pass 2**31 (an 8B model, a peak memory in bytes):
# PostgreSQL's INTEGER is 32-bit. SQLite's INTEGER is 64-bit already, and changing the
# declared type there would rebuild tables (and cascade-delete their children).
BIG_INTEGER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Dataset(SQLModel, table=True):
    """One version of a dataset, identified by the sha256 of its normalized examples."""

    __tablename__ = "datasets"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    content_hash: str = Field(unique=True, index=True)
    format: str  # chat | instruction | preference
    source_path: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    n_examples: int
    n_train: int
    n_validation: int
    val_fraction: float
    split_seed: int
    verdict: str  # ok | warnings | errors
    stats: dict | None = _json()
    """Token distribution and counts (see app.datasets.report)."""
    report: dict | None = _json()
    """The full validation report, as `ftm data check --json` prints it."""
    validation_indices: list | None = _json()
    """0-based indices (into the normalized examples) of the held-out split."""
    data_dir: str
    """Directory with train.jsonl and validation.jsonl in chat (or preference) form."""


class TokenCount(SQLModel, table=True):
    """Per-example token counts of a dataset split for one tokenizer, packed as uint32."""

    __tablename__ = "token_counts"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "tokenizer", "split"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True, ondelete="CASCADE")
    tokenizer: str  # "tiktoken:o200k_base" or "hf:<model path or id>"
    split: str  # train | validation
    n: int
    total: int = Field(sa_type=BIG_INTEGER)
    counts: bytes = Field(sa_type=sa.LargeBinary)
    """array('I') of per-example token counts, little-endian."""


# --------------------------------------------------------------------------- jobs


class Job(SQLModel, table=True):
    """A fine-tuning job on any provider."""

    __tablename__ = "jobs"
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(default_factory=lambda: uuid.uuid4().hex, unique=True, index=True)
    """ftm's own id, sent to hosted providers as metadata so a lost response can be
    reconciled without creating a second, billed job."""
    name: str
    provider: str = Field(index=True)
    remote_id: str | None = Field(default=None, index=True)
    base_model: str
    dataset_id: int | None = Field(default=None, foreign_key="datasets.id", index=True)
    method: str  # supervised | dpo | lora | qlora | full
    spec: dict | None = _json()
    """Snapshot of the JobSpec it was created from."""
    hyperparameters: dict | None = _json()
    """Resolved hyperparameters as the provider reports them."""
    status: str = Field(default="pending", index=True)
    error: dict | None = _json()
    """{code, message, param} when failed."""
    fine_tuned_model: str | None = None
    """The resulting model: an `ft:` id, or an adapter / merged model path."""
    simulated: bool = False
    """Created on the sandbox emulator: nothing real was trained or billed."""
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_s: float | None = None
    trained_tokens: int | None = Field(default=None, sa_type=BIG_INTEGER)
    events_cursor: str | None = None
    """Provider id of the newest event recorded."""
    estimate: dict | None = _json()
    """Cost/time estimate snapshot taken at launch."""
    estimated_cost_usd: float | None = None
    actual: dict | None = _json()
    """Actual figures recorded when the job ended."""
    actual_cost_usd: float | None = None
    billed_usd: float | None = None
    """What the provider itself reports the job cost (e.g. Together's ``total_price``);
    the actual cost prefers it to tokens x catalog price."""
    stalled: bool = False
    job_dir: str | None = None
    worker_pid: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    last_progress_at: datetime | None = _ts()


class JobEvent(SQLModel, table=True):
    __tablename__ = "job_events"
    __table_args__ = (sa.UniqueConstraint("job_id", "provider_event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    provider_event_id: str
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    level: str = "info"  # info | warn | error
    type: str = "message"  # message | metrics | status | stall
    message: str
    data: dict | None = _json()


class MetricPoint(SQLModel, table=True):
    __tablename__ = "metric_points"
    __table_args__ = (sa.UniqueConstraint("job_id", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    step: int
    train_loss: float | None = None
    eval_loss: float | None = None
    train_accuracy: float | None = None
    eval_accuracy: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Checkpoint(SQLModel, table=True):
    __tablename__ = "checkpoints"
    __table_args__ = (sa.UniqueConstraint("job_id", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    provider_checkpoint_id: str | None = None
    step: int
    model_ref: str
    """Checkpoint model id (hosted) or directory (local)."""
    metrics: dict | None = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    kind: str  # adapter | merged | result_file | log
    uri: str
    meta: dict | None = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class UploadedFile(SQLModel, table=True):
    """A training file already uploaded to a hosted provider, reused by content hash."""

    __tablename__ = "uploaded_files"
    __table_args__ = (sa.UniqueConstraint("provider", "endpoint", "content_hash", "purpose"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    endpoint: str
    """Base URL it was uploaded to (the sandbox and the real API are different stores)."""
    content_hash: str
    purpose: str
    remote_file_id: str
    bytes: int = Field(sa_type=BIG_INTEGER)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class ThroughputSample(SQLModel, table=True):
    """Measured local training throughput, which calibrates later time estimates."""

    __tablename__ = "throughput_samples"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, foreign_key="jobs.id", ondelete="SET NULL")
    hardware: str = Field(index=True)
    method: str
    model_params: int = Field(sa_type=BIG_INTEGER)
    """All parameters, 4-bit weights at their real size."""
    seq_len: int
    tokens_per_second: float
    """One device's rate: tokens over all ranks / world_size / timed training seconds."""
    achieved_flops_per_s: float
    """Per device, with the FLOPs per token of ``flops_facts``."""
    peak_memory_bytes: int | None = Field(default=None, sa_type=BIG_INTEGER)
    world_size: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    """Processes (GPUs) that trained data parallel."""
    flops_facts: dict | None = _json()
    """`providers.local.flops.FlopsFacts` of the run (shape, method, trainable parameters,
    checkpointing, context): calibration recomputes the estimator's FLOPs from them. None
    in samples written before they were recorded."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


# --------------------------------------------------------------------------- evaluation


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_runs"
    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)
    dataset_id: int | None = Field(default=None, foreign_key="datasets.id", index=True)
    eval_split: str = "validation"
    candidate_kind: str  # zero_shot | few_shot | fine_tuned | checkpoint
    provider: str
    model: str
    job_id: int | None = Field(default=None, foreign_key="jobs.id", ondelete="SET NULL")
    config: dict | None = _json()
    """Scorers, k, seed, generation settings: enough to reproduce the run."""
    status: str = "running"
    summary: dict | None = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    finished_at: datetime | None = _ts()


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_results"
    __table_args__ = (sa.UniqueConstraint("run_id", "suite", "example_index"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_runs.id", index=True, ondelete="CASCADE")
    suite: str = "task"  # task | general
    example_index: int
    expected: str | None = None
    output: str | None = None
    scores: dict | None = _json()
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False


class InferenceCache(SQLModel, table=True):
    """Completions keyed by provider, model, prompt and generation settings."""

    __tablename__ = "inference_cache"
    key: str = Field(primary_key=True)
    provider: str
    model: str
    output: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


# --------------------------------------------------------------------------- promotion


class Promotion(SQLModel, table=True):
    """One change of an alias: a promotion or a rollback. The history of an alias."""

    __tablename__ = "promotions"
    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)
    alias: str
    action: str  # promote | rollback
    provider: str
    model: str
    model_kind: str  # hosted | adapter | merged
    base_model: str | None = None
    job_id: int | None = Field(default=None, foreign_key="jobs.id", ondelete="SET NULL")
    eval_run_id: int | None = Field(default=None, foreign_key="eval_runs.id", ondelete="SET NULL")
    previous_id: int | None = Field(default=None, foreign_key="promotions.id")
    who: str
    why: str | None = None
    gates: dict | None = _json()
    overridden: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Alias(SQLModel, table=True):
    """Who holds an alias now: points at the current promotion."""

    __tablename__ = "aliases"
    __table_args__ = (sa.UniqueConstraint("task", "alias"),)
    id: int | None = Field(default=None, primary_key=True)
    task: str
    alias: str
    promotion_id: int = Field(foreign_key="promotions.id")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class GatePolicy(SQLModel, table=True):
    """Promotion gates of a task."""

    __tablename__ = "gate_policies"
    task: str = Field(primary_key=True)
    min_margin_over_baseline: float = 0.0
    max_general_drop: float = 0.05
    max_breakeven_requests: int | None = Field(default=None, sa_type=BIG_INTEGER)


# --------------------------------------------------------------------------- serving


class Deployment(SQLModel, table=True):
    """A model made callable: a billed endpoint (dedicated), a hosted model billed per
    token (serverless), or a server ftm runs itself (local). Kept after it stops, with its
    times, so cost to date and idle stops can be accounted for. No secrets: the provider's
    key stays in the provider's settings."""

    __tablename__ = "deployments"
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    model: str
    """The model (or adapter path) served."""
    task: str | None = None
    alias: str | None = None
    """The alias it was deployed for (``TASK:ALIAS``); None for a model deployed by name."""
    kind: str  # dedicated | serverless | local
    hardware: str | None = None
    """The provider's hardware id (e.g. Together's ``2x_nvidia_h100_80gb_sxm``), or the
    local device; None for serverless."""
    min_replicas: int = 1
    max_replicas: int = 1
    state: str = Field(default="pending", index=True)
    # pending | running | stopping | stopped | failed | deleted
    remote_id: str | None = Field(default=None, index=True)
    """The provider's endpoint id; None for serverless and local."""
    served_name: str | None = None
    """What a client passes as the model to reach it (Together's endpoint name, Azure's
    deployment name, a local server's adapter name); None: the model's own id."""
    endpoint_url: str | None = None
    usd_per_hour: float | None = None
    """Price of the running deployment per hour (all replicas at min_replicas); None for
    serverless, which is billed per token at the catalog's price."""
    started_at: datetime | None = _ts()
    stopped_at: datetime | None = _ts()
    stop_reason: str | None = None
    """Why it stopped: ``user``, ``idle`` (no traffic for ``idle_stop_s``), ``failed``."""
    idle_stop_s: int | None = None
    """Stop after this many seconds without a request; None: never stopped for idleness."""
    last_request_at: datetime | None = _ts()
    requests_served: int = Field(default=0, sa_type=BIG_INTEGER)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class GatewayKey(SQLModel, table=True):
    """A key a client of `ftm serve` authenticates with. Only its hash is stored (see
    app/gateway/keys.py): the key itself is shown once, when it is created."""

    __tablename__ = "gateway_keys"
    __table_args__ = (
        # A name is unique among live keys only: a revoked key's name can be issued again.
        sa.Index(
            "ix_gateway_keys_live_name",
            "name",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str
    key_hash: str = Field(unique=True)
    """Hex sha256 of the whole key."""
    prefix: str = Field(index=True)
    """The key's first characters (``ftm_gw_`` and 6 more): shown in lists so a person can
    tell keys apart, and used to find a key's row; not enough to guess the rest."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()


class GatewayRequest(SQLModel, table=True):
    """One request through the gateway: the log that measured traffic and per-alias cost
    are computed from."""

    __tablename__ = "gateway_requests"
    __table_args__ = (
        # "this alias, this month": the per-alias cost and traffic queries.
        sa.Index("ix_gateway_requests_task_alias_created_at", "task", "alias", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(unique=True)
    """The gateway's id for the request: a batch written twice (after a crash) cannot log
    a request twice."""
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=sa.DateTime(timezone=True), index=True
    )
    """When the request arrived."""
    task: str | None = None
    alias: str | None = None
    """None when the requested model named no known task."""
    provider: str | None = None
    model: str | None = None
    """The holder that answered (None when none was resolved)."""
    deployment_id: int | None = Field(
        default=None, foreign_key="deployments.id", ondelete="SET NULL", index=True
    )
    route: str = "primary"  # primary | canary | shadow
    key_name: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    status_code: int
    error_code: str | None = None
    """The OpenAI-style error code returned (``model_not_found``...), None on success."""


class TrafficPolicy(SQLModel, table=True):
    """How the gateway splits a task's traffic: a canary share answered by another alias's
    holder, and shadowing (the request also sent to a candidate, its answer stored, never
    returned). Read on every request, so a change takes effect at the next one."""

    __tablename__ = "traffic_policies"
    task: str = Field(primary_key=True)
    alias: str = Field(default="production", primary_key=True)
    """The alias whose traffic this policy splits (what ``TASK`` / ``TASK:ALIAS`` names)."""
    canary_alias: str = "staging"
    canary_percent: float = 0.0
    """Share of the alias's requests (0..100) answered by the canary alias's holder."""
    shadow: bool = False
    shadow_alias: str = "staging"
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_by: str | None = None


class ShadowAnswer(SQLModel, table=True):
    """One shadowed request: what production answered and what the candidate would have
    answered (never returned to the client). Feeds the candidate's figures in `ftm compare`."""

    __tablename__ = "shadow_answers"
    __table_args__ = (sa.Index("ix_shadow_answers_task_candidate", "task", "candidate_model"),)
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(unique=True)
    """The gateway request it shadows: written at most once, like the request log."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    task: str
    alias: str
    """The alias the client asked for (whose holder answered)."""
    messages: list | None = _json()
    primary_provider: str | None = None
    primary_model: str | None = None
    primary_text: str | None = None
    candidate_provider: str
    candidate_model: str
    candidate_text: str | None = None
    candidate_latency_ms: float | None = None
    candidate_status: int
    """HTTP-style status of the candidate's answer (200, or the error's status)."""
