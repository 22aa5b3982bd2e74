"""What the Together emulator stores, and how each record looks on Together's wire.

Times are the sandbox clock's float seconds; Together shows a job's times as ISO 8601
strings and a file's as whole Unix seconds. Records serialize to plain dicts for the
state file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.sandbox.records import StoredFile


def iso(at: float) -> str:
    """Together's timestamp form: ``2026-12-01T08:30:00.123Z``."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def file_api(stored: StoredFile) -> dict[str, Any]:
    """A file as ``FileResponse``; the emulator validates files when a job uses them, so
    a stored file is always reported processed."""
    suffix = stored.filename.rsplit(".", 1)[-1].lower()
    return {
        "id": stored.id,
        "object": "file",
        "created_at": int(stored.created_at),
        "filename": stored.filename,
        "bytes": stored.bytes,
        "purpose": stored.purpose,
        "FileType": suffix if suffix in ("jsonl", "csv", "parquet") else "jsonl",
        "Processed": True,
        "processing_status": "COMPLETED",
    }


@dataclass
class TogetherEvent:
    created_at: float
    type: str
    message: str
    level: str = "info"
    step: int = 0
    checkpoint_path: str = ""
    model_path: str = ""

    def to_api(self, job: TogetherJob) -> dict[str, Any]:
        return {
            "object": "fine-tune-event",
            "created_at": iso(self.created_at),
            "level": self.level,
            "message": self.message,
            "type": self.type,
            "param_count": job.param_count,
            "token_count": job.token_count,
            "total_steps": job.total_steps,
            "wandb_url": "",
            "step": self.step,
            "checkpoint_path": self.checkpoint_path,
            "model_path": self.model_path,
            "training_offset": 0,
            "hash": "",
        }


@dataclass
class TogetherJob:
    id: str
    model: str
    training_file: str
    created_at: float
    param_count: int
    n_epochs: int
    n_checkpoints: int
    n_evals: int
    batch_size: int
    learning_rate: float
    training_method: dict[str, Any]
    training_type: dict[str, Any]
    model_output_name: str
    validation_file: str | None = None
    suffix: str | None = None
    status: str = "pending"
    status_since: float = 0.0
    updated_at: float = 0.0
    token_count: int = 0
    """Tokens billed for the whole job (epochs x training + evals x validation)."""
    tokens_per_step: float = 0.0
    total_steps: int = 0
    steps_done: int = 0
    epochs_completed: int = 0
    total_price: int = 0
    """Nanodollars charged so far: grows with the steps run (a cancelled job pays for its
    steps), equals the full price once completed."""
    events: list[TogetherEvent] = field(default_factory=list)

    @property
    def lora(self) -> bool:
        return self.training_type["type"] == "Lora"

    @property
    def model_output_path(self) -> str:
        return f"s3://together-sandbox/finetune/{self.id}/output"

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "cancelled", "error")

    def _common(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at or self.created_at),
            "model": self.model,
            "model_output_name": self.model_output_name,
            "training_file": self.training_file,
            "n_epochs": self.n_epochs,
            "n_checkpoints": self.n_checkpoints,
            "n_evals": self.n_evals,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "training_method": self.training_method,
            "training_type": self.training_type,
            "token_count": self.token_count,
            "total_price": self.total_price,
            "events": [event.to_api(self) for event in self.events],
        }
        if self.status_since and self.status != "pending":
            body["started_at"] = iso(self.status_since)
        if self.validation_file:
            body["validation_file"] = self.validation_file
        return body

    def to_api_truncated(self) -> dict[str, Any]:
        """``FinetuneResponseTruncated`` (create, list, cancel)."""
        body = self._common()
        if self.suffix:
            body["suffix"] = self.suffix
        body["user_id"] = "user_sandbox"
        body["owner_address"] = "sandbox@ftm.local"
        return body

    def to_api(self) -> dict[str, Any]:
        """``FinetuneResponse`` (retrieve)."""
        body = self._common()
        body["param_count"] = self.param_count
        body["epochs_completed"] = self.epochs_completed
        body["queue_depth"] = 0
        body["model_output_path"] = self.model_output_path
        return body

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TogetherJob:
        events = [TogetherEvent(**e) for e in data.get("events", [])]
        return cls(**{**data, "events": events})
