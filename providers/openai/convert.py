"""OpenAI API objects (as plain dicts) -> ftm's provider-neutral types.

Everything works on the JSON the API sent (``model.to_dict()``), not on the SDK's typed
fields, so a status or field the installed SDK does not know yet (``paused`` is missing
from the spec's enum) is read as it came instead of being dropped.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from providers.types import Checkpoint, JobError, JobEvent, JobStatus, MetricPoint, RemoteJob

STATUS_MAP: dict[str, JobStatus] = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}


def normalize_status(raw: str | None) -> JobStatus:
    """ftm's status for an API status. An unknown one maps to ``queued``: not terminal, and
    the state machine never moves a job backwards to it (the raw value is kept)."""
    if raw in STATUS_MAP:
        return STATUS_MAP[raw]
    if raw and "paus" in raw:  # paused, pausing
        return JobStatus.PAUSED
    return JobStatus.QUEUED


def ts(value: Any) -> datetime | None:
    """A unix timestamp (seconds) as an aware datetime."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _error(raw: Any) -> JobError | None:
    if not isinstance(raw, dict) or not (raw.get("message") or raw.get("code")):
        return None  # the API sends null or {} until a failure
    return JobError(
        code=raw.get("code"),
        message=str(raw.get("message") or raw.get("code")),
        param=raw.get("param"),
    )


def hyperparameters_of(job: dict[str, Any]) -> dict[str, Any] | None:
    """Hyperparameters as resolved by the API: the method's, else the deprecated top level."""
    method = job.get("method") or {}
    kind = method.get("type")
    hp = ((method.get(kind) or {}).get("hyperparameters") if kind else None) or job.get(
        "hyperparameters"
    )
    return dict(hp) if hp else None


def remote_job(
    job: dict[str, Any], *, step: int | None = None, total_steps: int | None = None
) -> RemoteJob:
    raw_status = job.get("status")
    return RemoteJob(
        remote_id=job["id"],
        status=normalize_status(raw_status),
        raw_status=raw_status,
        fine_tuned_model=job.get("fine_tuned_model"),
        hyperparameters=hyperparameters_of(job),
        trained_tokens=job.get("trained_tokens"),
        error=_error(job.get("error")),
        step=step,
        total_steps=total_steps,
        estimated_finish=ts(job.get("estimated_finish")),
        created_at=ts(job.get("created_at")),
        finished_at=ts(job.get("finished_at")),
        metadata=job.get("metadata") or None,
        base_model=job.get("model"),
    )


def method_of(job: dict[str, Any]) -> str:
    return (job.get("method") or {}).get("type") or "supervised"


def event(raw: dict[str, Any]) -> JobEvent:
    return JobEvent(
        id=raw["id"],
        created_at=ts(raw.get("created_at")) or datetime.now(UTC),
        message=str(raw.get("message") or ""),
        level=raw.get("level") or "info",
        type=raw.get("type") or "message",
        data=raw.get("data") or None,
    )


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_from_event(ev: JobEvent) -> MetricPoint | None:
    """The metric point a ``metrics`` event carries, if any."""
    data = ev.data or {}
    if ev.type != "metrics" or "step" not in data:
        return None
    return MetricPoint(
        step=int(data["step"]),
        train_loss=_num(data.get("train_loss")),
        eval_loss=_num(data.get("full_valid_loss", data.get("valid_loss"))),
        train_accuracy=_num(data.get("train_mean_token_accuracy")),
        eval_accuracy=_num(
            data.get("full_valid_mean_token_accuracy", data.get("valid_mean_token_accuracy"))
        ),
    )


def checkpoint(raw: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        step=int(raw.get("step_number") or 0),
        model_ref=raw.get("fine_tuned_model_checkpoint") or "",
        id=raw.get("id"),
        metrics=raw.get("metrics") or None,
        created_at=ts(raw.get("created_at")),
    )


def metrics_from_result_csv(text: str) -> list[MetricPoint]:
    """Metric points from the result file: ``step,train_loss,train_accuracy,valid_loss,
    valid_mean_token_accuracy`` (validation cells empty on steps without validation)."""
    points = []
    for row in csv.DictReader(io.StringIO(text.strip())):
        step = _num(row.get("step"))
        if step is None:
            continue
        points.append(
            MetricPoint(
                step=int(step),
                train_loss=_num(row.get("train_loss")),
                train_accuracy=_num(row.get("train_accuracy")),
                eval_loss=_num(row.get("valid_loss")),
                eval_accuracy=_num(row.get("valid_mean_token_accuracy")),
            )
        )
    return points
