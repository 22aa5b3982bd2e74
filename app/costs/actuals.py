"""Estimate versus actual: when a job ends, record what it really cost beside the estimate.

hosted: the amount the provider itself reports (``job.billed_usd``, e.g. Together's
``total_price``) when it reports one, else its ``trained_tokens`` x the training price of
the job's base model.
local: the measured wall time (started -> finished), tokens/s and peak memory (from the
job's throughput sample, else its metric points), priced at the hardware's $/hour.

`record_actual` is idempotent: it recomputes from the job's stored facts and overwrites
``job.actual`` / ``job.actual_cost_usd`` with the same figures, so a poller that sees the
end twice records it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from app.costs.calibration import hardware_key
from app.costs.catalog import Catalog, load_catalog
from app.costs.errors import CostError
from app.jobs.providers import capabilities_of
from db.models import Job, MetricPoint, ThroughputSample


def _error_pct(estimate: float | None, actual: float | None) -> float | None:
    """(estimate - actual) / actual x 100: positive when the estimate was too high."""
    if estimate is None or actual is None or actual == 0:
        return None
    return (float(estimate) - float(actual)) / float(actual) * 100.0


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _provider_billed_actual(job: Job) -> dict[str, Any]:
    """The provider's own figure: nothing to multiply, no catalog needed."""
    out: dict[str, Any] = {
        "kind": "hosted",
        "trained_tokens": job.trained_tokens,
        "cost_usd": job.billed_usd,
        "price_source": "reported by the provider",
    }
    if job.simulated:
        out["simulated"] = True
        out["billed_usd"] = 0.0
        out["note"] = "sandbox job: the emulator's own price, nothing was billed"
    else:
        out["billed_usd"] = job.billed_usd
    estimate = job.estimate or {}
    out["estimated_billable_tokens"] = estimate.get("billable_tokens")
    out["tokens_error_pct"] = _error_pct(estimate.get("billable_tokens"), job.trained_tokens)
    return out


def _hosted_actual(job: Job, catalog: Catalog) -> dict[str, Any]:
    if job.billed_usd is not None:
        return _provider_billed_actual(job)
    try:
        prices = catalog.hosted_model(job.base_model, job.provider)
    except CostError as e:  # a model the catalog does not price: say so, keep the tokens
        return {
            "kind": "hosted",
            "trained_tokens": job.trained_tokens,
            "cost_usd": None,
            "note": str(e),
        }
    out: dict[str, Any] = {
        "kind": "hosted",
        "trained_tokens": job.trained_tokens,
        "usd_per_1m_tokens": prices.training,
        "price_source": prices.source.text,
        "price_as_of": prices.source.as_of.isoformat(),
    }
    if job.trained_tokens is None:
        out["cost_usd"] = None
        out["note"] = f"the provider reported no trained_tokens (status {job.status})"
    else:
        out["cost_usd"] = job.trained_tokens / 1e6 * prices.training
    if job.simulated:
        out["simulated"] = True
        out["billed_usd"] = 0.0
        out["note"] = "sandbox job: priced as if real, nothing was billed"
    estimate = job.estimate or {}
    out["estimated_billable_tokens"] = estimate.get("billable_tokens")
    out["tokens_error_pct"] = _error_pct(estimate.get("billable_tokens"), job.trained_tokens)
    return out


def _local_actual(session: Session, job: Job, catalog: Catalog) -> dict[str, Any]:
    estimate = job.estimate or {}
    sample = session.exec(
        select(ThroughputSample)
        .where(ThroughputSample.job_id == job.id)
        .order_by(ThroughputSample.created_at.desc())
    ).first()
    started, finished = _aware(job.started_at), _aware(job.finished_at)
    wall = (finished - started).total_seconds() if started and finished else None
    tps = sample.tokens_per_second if sample else job.tokens_per_second
    if tps is None:  # the last metric points' tokens/s
        rates = [
            r
            for r in session.exec(
                select(MetricPoint.tokens_per_second).where(
                    MetricPoint.job_id == job.id, MetricPoint.tokens_per_second.is_not(None)
                )
            )
        ]
        tps = sum(rates) / len(rates) if rates else None
    prior = job.actual or {}
    trained = job.trained_tokens or prior.get("trained_tokens")
    # The local worker writes its training-loop time as train_runtime_s.
    train_seconds = prior.get("train_seconds", prior.get("train_runtime_s"))
    if train_seconds is None and trained and tps:
        train_seconds = trained / tps
    named = sample.hardware if sample else prior.get("hardware") or estimate.get("gpu")
    hardware = hardware_key(named, catalog) if named else None
    n_gpu = int((job.spec or {}).get("options", {}).get("n_gpus", 1) or 1)
    out: dict[str, Any] = {
        "kind": "local",
        "wall_seconds": wall,
        "train_seconds": train_seconds,
        "tokens_per_second": tps,
        "trained_tokens": trained,
        "peak_memory_bytes": sample.peak_memory_bytes if sample else prior.get("peak_memory_bytes"),
        "achieved_flops_per_s": sample.achieved_flops_per_s if sample else None,
        "hardware": hardware,
        "n_gpu": n_gpu,
    }
    seconds = wall if wall is not None else train_seconds
    if hardware and seconds is not None:
        try:
            price = catalog.hourly_price(catalog.gpu(hardware))
        except CostError as e:
            out["cost_usd"], out["note"] = None, str(e)
        else:
            out["usd_per_hour"] = price.usd_per_hour
            out["price_source"] = price.source.text
            out["cost_usd"] = seconds / 3600 * price.usd_per_hour * n_gpu
    else:
        out["cost_usd"] = None
        out["note"] = "no start/finish time or hardware recorded for this job"
    out["time_error_pct"] = _error_pct(estimate.get("training_time_s"), wall)
    train_estimate = (estimate.get("inputs", {}).get("training", {}) or {}).get("train_seconds")
    out["train_time_error_pct"] = _error_pct(train_estimate, train_seconds)
    out["memory_error_pct"] = _error_pct(
        estimate.get("peak_memory_bytes"), out["peak_memory_bytes"]
    )
    return out


def record_actual(session: Session, job: Job, *, catalog: Catalog | None = None) -> dict[str, Any]:
    """Record the job's actual figures and cost beside its estimate; returns them.

    Runs inside the caller's transaction (the poller's write session); adds ``job`` to the
    session and leaves the commit to the caller.
    """
    catalog = catalog or load_catalog()
    if capabilities_of(job.provider).runs_locally:  # priced by its GPU hours
        actual = _local_actual(session, job, catalog)
    else:
        actual = _hosted_actual(job, catalog)
    actual["status"] = job.status
    actual["estimated_cost_usd"] = job.estimated_cost_usd
    actual["cost_error_pct"] = _error_pct(job.estimated_cost_usd, actual.get("cost_usd"))
    actual["catalog_as_of"] = catalog.as_of.isoformat()
    # Keep what the worker wrote that we do not compute (e.g. its own figures).
    job.actual = {**(job.actual or {}), **actual}
    job.actual_cost_usd = actual.get("cost_usd")
    session.add(job)
    return job.actual


def pending_actuals_statement():
    """Select the ended jobs with no recorded actual yet, filtered in SQL.

    A recorded actual always holds ``cost_error_pct`` (`record_actual`); a local worker's
    own figures do not, so a job whose ``actual`` lacks the key still needs recording. The
    filter runs in the database: the poller calls this every cycle over every job ever run.
    """
    from sqlalchemy import String, cast, not_, or_

    from providers.types import TERMINAL_STATUSES

    ended = [s.value for s in TERMINAL_STATUSES]
    return (
        select(Job)
        .where(
            Job.status.in_(ended),
            or_(Job.actual.is_(None), not_(cast(Job.actual, String).contains('"cost_error_pct"'))),
        )
        .order_by(Job.id)
    )


def record_pending_actuals(session: Session, *, catalog: Catalog | None = None) -> int:
    """Record actuals for ended jobs that have none yet; returns how many.

    Local workers write their final status straight to the database, so the poller never
    sees those jobs change state; call this once per poll cycle (cheap: one query that
    returns only the jobs still to record, see `pending_actuals_statement`).
    """
    pending = session.exec(pending_actuals_statement()).all()
    if pending:
        catalog = catalog or load_catalog()
    for job in pending:
        try:
            with session.begin_nested():
                record_actual(session, job, catalog=catalog)
        except Exception as exc:  # noqa: BLE001  one bad job must not block the others
            # Recorded as not computable, so the next cycles do not retry it forever.
            job.actual = {
                **(job.actual or {}),
                "status": job.status,
                "cost_usd": None,
                "cost_error_pct": None,
                "note": f"could not compute the actual cost: {type(exc).__name__}: {exc}",
            }
            session.add(job)
    return len(pending)
