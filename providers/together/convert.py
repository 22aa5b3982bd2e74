"""Together API objects (plain dicts, as sent) -> ftm's provider-neutral types.

Together's events carry no id: the list only grows (events are appended), so an event is
named by its job and its place in that list, ``<job id>#<index>``. The events cursor is
``<events seen>:<last metric step seen>`` (a bare count from before metrics were read
is understood too).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from providers.types import Checkpoint, JobError, JobEvent, JobStatus, MetricPoint, RemoteJob

STATUS_MAP: dict[str, JobStatus] = {
    # accepted, files being checked: ftm's "pending" means nothing was sent yet
    "pending": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    # training is over, the weights are being packed and stored: still working
    "compressing": JobStatus.RUNNING,
    "uploading": JobStatus.RUNNING,
    # ftm has no "cancelling" state; the raw status is kept beside it
    "cancel_requested": JobStatus.RUNNING,
    "cancelled": JobStatus.CANCELLED,
    "error": JobStatus.FAILED,
    "user_error": JobStatus.FAILED,
    "completed": JobStatus.SUCCEEDED,
}
FAILED_STATUSES = frozenset({"error", "user_error"})
NANODOLLARS_PER_DOLLAR = 1_000_000_000
UID_TAG_PREFIX = "ftm"
UID_TAG_HEX = 16
"""ftm's job uid travels in the suffix as ``ftm`` + its first 16 hex digits (64 bits):
Together caps suffixes at 40 characters, which the full uid and a user's suffix exceed."""
_LEVELS = {"warning": "warn", "warn": "warn", "error": "error"}
_TAG = re.compile(UID_TAG_PREFIX + f"([0-9a-f]{{{UID_TAG_HEX}}})")


def uid_tag(ftm_job_uid: str) -> str:
    return UID_TAG_PREFIX + ftm_job_uid.replace("-", "")[:UID_TAG_HEX]


def suffix_for(user_suffix: str | None, ftm_job_uid: str) -> str:
    """The suffix sent to Together: the user's, then ftm's uid tag (kept in the output
    model name, so the job can be found again after a lost answer)."""
    tag = uid_tag(ftm_job_uid)
    return f"{user_suffix}-{tag}" if user_suffix else tag


def uid_prefix_of(job: dict[str, Any]) -> str | None:
    """The start of the ftm uid whose tag ends the job's suffix, if any (see `uid_tag`)."""
    tail = (job.get("suffix") or "").rsplit("-", 1)[-1]
    match = _TAG.fullmatch(tail)
    return match.group(1) if match else None


def carries_uid(job: dict[str, Any], ftm_job_uid: str) -> bool:
    tag = uid_tag(ftm_job_uid)
    suffix = job.get("suffix") or ""
    output = job.get("model_output_name") or job.get("x_model_output_name") or ""
    return suffix == tag or suffix.endswith("-" + tag) or f"-{tag}" in output


def normalize_status(raw: str | None) -> JobStatus:
    """ftm's status for a Together status; an unknown one maps to ``queued`` (not
    terminal; the state machine never moves a job backwards to it; the raw one is kept)."""
    return STATUS_MAP.get(raw or "", JobStatus.QUEUED)


def ts(value: Any) -> datetime | None:
    """An ISO 8601 string (Together's ``...Z`` form) or a datetime, as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_id(job_id: str, index: int) -> str:
    return f"{job_id}#{index}"


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    """(events seen, last metric step seen) from a cursor; (0, 0), everything, for none or
    one not ours."""
    if not cursor:
        return 0, 0
    events, _, step = cursor.partition(":")
    try:
        return max(0, int(events)), max(0, int(step or 0))
    except ValueError:
        return 0, 0


def make_cursor(events_seen: int, last_step: int) -> str:
    return f"{events_seen}:{last_step}"


TRAINED_STATUSES = frozenset(
    {"running", "compressing", "uploading", "completed", "cancel_requested", "cancelled", "error"}
)
"""Statuses in which training steps may have run: only then are metrics asked for."""


def metric(raw: dict[str, Any]) -> MetricPoint | None:
    """A point from one ``/metrics`` snapshot (``train/loss``, ``train/global_step``...)."""
    step = raw.get("train/global_step", raw.get("global_step"))
    if step is None:
        return None

    def num(key: str) -> float | None:
        value = raw.get(key)
        return float(value) if isinstance(value, int | float) else None

    return MetricPoint(
        step=int(step),
        train_loss=num("train/loss"),
        eval_loss=num("eval/loss"),
        learning_rate=num("train/learning_rate"),
        grad_norm=num("train/grad_norm"),
    )


def event(job_id: str, index: int, raw: dict[str, Any]) -> JobEvent:
    level = str(raw.get("level") or "info").removeprefix("legacy_i").removeprefix("legacy_")
    data = {
        k: raw[k]
        for k in ("step", "total_steps", "checkpoint_path", "model_path", "token_count")
        if raw.get(k) not in (None, "", 0)
    }
    return JobEvent(
        id=event_id(job_id, index),
        created_at=ts(raw.get("created_at")) or datetime.now(UTC),
        message=str(raw.get("message") or ""),
        level=_LEVELS.get(level, "info"),
        type=str(raw.get("type") or "message"),
        data=data or None,
    )


def hyperparameters_of(job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: job[k]
        for k in ("n_epochs", "batch_size", "learning_rate", "n_checkpoints", "n_evals")
        if job.get(k) is not None
    }
    method = job.get("training_method") or {}
    if method.get("method"):
        out["method"] = "dpo" if method["method"] == "dpo" else "supervised"
        if method.get("dpo_beta") is not None:
            out["beta"] = method["dpo_beta"]
    kind = job.get("training_type") or {}
    if kind.get("type"):
        out["training_type"] = kind["type"]
        for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_trainable_modules"):
            if kind.get(k) is not None:
                out[k] = kind[k]
    return out


def _error(job: dict[str, Any], raw_status: str | None) -> JobError | None:
    if raw_status not in FAILED_STATUSES:
        return None
    messages = [
        e.get("message")
        for e in job.get("events") or []
        if (e.get("level") == "error" or e.get("type") == "job_error") and e.get("message")
    ]
    message = messages[-1] if messages else f"Together AI ended the job with status {raw_status}"
    return JobError(code=raw_status, message=str(message))


def billed_usd(job: dict[str, Any]) -> float | None:
    """``total_price`` (integer nanodollars) in dollars; None when not reported."""
    price = job.get("total_price")
    if price is None:
        return None
    return int(price) / NANODOLLARS_PER_DOLLAR


def remote_job(job: dict[str, Any], *, uid: str | None = None) -> RemoteJob:
    raw_status = job.get("status")
    status = normalize_status(raw_status)
    step = total = None
    for ev in job.get("events") or []:
        if ev.get("step"):
            step = int(ev["step"])
        if ev.get("total_steps"):
            total = int(ev["total_steps"])
    if status == JobStatus.SUCCEEDED and total:
        step = total
    tokens = job.get("token_count")
    return RemoteJob(
        remote_id=job["id"],
        status=status,
        raw_status=raw_status,
        fine_tuned_model=(job.get("model_output_name") or job.get("x_model_output_name"))
        if status == JobStatus.SUCCEEDED
        else None,
        hyperparameters=hyperparameters_of(job) or None,
        trained_tokens=int(tokens) if tokens else None,
        error=_error(job, raw_status),
        step=step,
        total_steps=total,
        created_at=ts(job.get("created_at")),
        finished_at=ts(job.get("updated_at")) if status.is_terminal else None,
        metadata={"ftm_job_uid": uid} if uid else None,
        base_model=job.get("model"),
        billed_usd=billed_usd(job),
        ftm_uid_prefix=uid_prefix_of(job),
    )


def checkpoints(job_id: str, raw: list[dict[str, Any]]) -> list[Checkpoint]:
    """One checkpoint per step (Together lists a LoRA job's final adapter and merged
    model as two entries of one step); referenced as ``JOB_ID:STEP``, the form Together's
    ``from_checkpoint`` and download take."""
    by_step: dict[int, Checkpoint] = {}
    for item in raw:
        step = int(item.get("step") or 0)
        kinds = dict((by_step[step].metrics or {}).get("paths", {})) if step in by_step else {}
        kinds[str(item.get("checkpoint_type") or "checkpoint")] = item.get("path") or ""
        by_step[step] = Checkpoint(
            step=step,
            model_ref=f"{job_id}:{step}",
            id=f"{job_id}:{step}",
            metrics={"paths": kinds},
            created_at=ts(item.get("created_at")),
        )
    return [by_step[s] for s in sorted(by_step)]
