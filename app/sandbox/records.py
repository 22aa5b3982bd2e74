"""What the emulator stores, and how each record looks on the wire.

Times are the sandbox clock's float seconds; the API shows them as whole seconds.
Records serialize to plain dicts (``to_state``/``from_state``) for the optional state file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    path: Path

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }

    def to_state(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> StoredFile:
        return cls(**{**data, "path": Path(data["path"])})


@dataclass
class Event:
    id: str
    created_at: float
    message: str
    level: str = "info"
    type: str = "message"
    data: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job.event",
            "id": self.id,
            "created_at": int(self.created_at),
            "level": self.level,
            "message": self.message,
            "data": self.data or {},
            "type": self.type,
        }


@dataclass
class CheckpointRecord:
    id: str
    created_at: float
    step: int
    model: str
    metrics: dict[str, Any]

    def to_api(self, job_id: str) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job.checkpoint",
            "id": self.id,
            "created_at": int(self.created_at),
            "fine_tuned_model_checkpoint": self.model,
            "fine_tuning_job_id": job_id,
            "metrics": self.metrics,
            "step_number": self.step,
        }


@dataclass
class Job:
    """One fine-tuning job and its whole simulated history."""

    id: str
    created_at: float
    model: str
    """As reported: the base snapshot, or the fine-tuned model it continues from."""
    base_model: str
    """The base snapshot underneath (names the fine-tuned model and its tokenizer)."""
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None
    method: str
    requested: dict[str, Any]
    """Hyperparameters as requested, "auto" where not given."""
    model_name: str
    """The fine-tuned model's name, reserved at creation (checkpoints carry it too)."""
    organization_id: str
    status: str = "validating_files"
    status_since: float = 0.0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    """Resolved values once the files are validated; the requested ones before."""
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: float | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    steps_done: int = 0
    segment_start_step: int = 0
    """steps_done when the current running stretch began (it restarts after a resume)."""
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    billable_tokens_per_epoch: int | None = None
    metric_rows: list[dict[str, Any]] = field(default_factory=list)
    memory: list[tuple[str, str]] = field(default_factory=list)
    """(prompt, reply) pairs of the training examples: what the fine-tuned model answers from."""
    started: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def to_api(self, estimated_finish: float | None) -> dict[str, Any]:
        common = {k: v for k, v in self.hyperparameters.items() if k != "beta"}
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": int(self.created_at),
            "finished_at": int(self.finished_at) if self.finished_at is not None else None,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.organization_id,
            "result_files": list(self.result_files),
            "status": self.status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": common,
            "method": {
                "type": self.method,
                self.method: {"hyperparameters": dict(self.hyperparameters)},
            },
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "user_provided_suffix": self.suffix,
            "seed": self.seed,
            "estimated_finish": int(estimated_finish) if estimated_finish is not None else None,
            "integrations": self.integrations or [],
            "metadata": self.metadata,
        }

    def to_state(self) -> dict[str, Any]:
        data = asdict(self)
        data["memory"] = [list(pair) for pair in self.memory]
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        data["events"] = [Event(**e) for e in data.get("events", [])]
        data["checkpoints"] = [CheckpointRecord(**c) for c in data.get("checkpoints", [])]
        data["memory"] = [tuple(pair) for pair in data.get("memory", [])]
        return cls(**data)


@dataclass
class FineTunedModel:
    """A fine-tuned model or checkpoint that answers chat completions."""

    id: str
    created: float
    owned_by: str
    job_id: str
    base_model: str

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "model",
            "created": int(self.created),
            "owned_by": self.owned_by,
        }
