"""What the launch wizard asks of the rest of ftm, in one place: datasets, providers,
base models, the cost preview and the launch. Every function here may block (database,
network, imports) and is called from the wizard's thread workers only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from app.costs.errors import CostError
from app.jobs.launch import LaunchError
from app.tui.screens.confirm import format_usd
from app.tui.screens.launch_form import DatasetChoice
from providers.base import Capabilities, Provider, ProviderOption
from providers.errors import ProviderError
from providers.registry import ProviderRegistry, discover
from providers.types import BaseModelInfo, Hyperparameters

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ProviderError,
    CostError,
    LaunchError,
    ValueError,
    LookupError,
)
"""Failures the wizard shows inline (anything else goes to the app's error handler)."""

_registry: ProviderRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> ProviderRegistry:
    """The provider registry, discovered once per process (entry points import modules)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = discover()
        return _registry


def dataset_choices() -> list[DatasetChoice]:
    """Every dataset, newest first."""
    from sqlmodel import select

    from app.database import get_engine
    from db.engine import read_session
    from db.models import Dataset

    with read_session(get_engine()) as session:
        rows = session.exec(select(Dataset).order_by(Dataset.created_at.desc())).all()
    return [
        DatasetChoice(
            id=d.id,
            name=d.name,
            verdict=d.verdict,
            n_train=d.n_train,
            n_validation=d.n_validation,
            format=d.format,
            content_hash=d.content_hash,
        )
        for d in rows
    ]


def provider_names() -> tuple[list[str], dict[str, str]]:
    """Names of the providers that loaded, and why the others did not."""
    reg = registry()
    return reg.names(), dict(reg.broken)


def provider_info(name: str) -> tuple[Capabilities, tuple[ProviderOption, ...], str]:
    """A provider's capabilities, options and a one-line description (class data only)."""
    cls = registry().get(name)
    caps = cls.capabilities
    traits = []
    if caps.runs_locally:
        traits.append("trains on this machine")
    if caps.per_token_billing:
        traits.append("billed per trained token")
    if caps.can_pause:
        traits.append("can pause")
    if caps.can_resume_from_checkpoint:
        traits.append("resumes from checkpoints")
    return caps, tuple(cls.options), f"{cls.display_name}: {', '.join(traits) or 'hosted'}"


def make_provider(name: str) -> Provider:
    """An instance of the provider ``name``, configured from the settings."""
    from app.jobs.providers import make_provider as build

    return build(name)


def base_models(name: str) -> list[BaseModelInfo]:
    """The base models ``name`` can fine-tune (may call the provider's API)."""
    provider = make_provider(name)
    try:
        return list(provider.list_base_models())
    finally:
        provider.close()


@dataclass(frozen=True)
class PreviewRequest:
    dataset_id: int
    provider: str
    base_model: str
    method: str
    hyperparameters: Hyperparameters
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    today: date | None = None
    """The day the warnings are for (None: today); tests pin it."""


@dataclass(frozen=True)
class Preview:
    """The launch plan as the wizard shows it: cost and time, warnings, problems."""

    lines: list[tuple[str, str]]
    """(label, value) rows to show."""
    training_cost_usd: float | None
    spend_note: str
    simulated: bool = False
    raw: dict | None = None
    """The estimate as the costs module returned it (stored on the job at launch)."""
    warnings: list[str] = field(default_factory=list)
    """`app.jobs.launch.plan_launch`'s warnings (service cutoff, model retirement...)."""
    problems: list[str] = field(default_factory=list)
    """Why the provider cannot run this job; the launch is refused while any remain."""
    no_estimate: str | None = None

    def render(self) -> str:
        width = max((len(label) for label, _ in self.lines), default=0)
        rows = [f"{label.ljust(width)}  {value}" for label, value in self.lines]
        if not self.lines:
            rows.append(
                f"No estimate: {self.no_estimate}"
                if self.no_estimate
                else "No estimate for this provider."
            )
        rows += [f"⚠ {w}" for w in self.warnings]
        rows += [f"✗ {p}" for p in self.problems]
        return "\n".join(rows)


def compute_preview(request: PreviewRequest) -> Preview:
    """The launch plan (`app.jobs.launch.plan_launch`, the same one `ftm launch` shows)
    for the wizard's current fields."""
    from app.jobs.launch import plan_launch

    plan = plan_launch(
        request.provider,
        request.dataset_id,
        request.base_model,
        method=request.method,
        hyperparameters=request.hyperparameters,
        options=request.options,
        name=request.name or None,
        today=request.today,
    )
    if plan.provider is not None:
        plan.provider.close()
    preview = preview_from_estimate(plan.estimate.estimate or {})
    return replace(
        preview,
        warnings=list(plan.warnings),
        problems=list(plan.problems),
        simulated=plan.estimate.simulated or preview.simulated,
        no_estimate=plan.estimate.no_estimate,
    )


def preview_from_estimate(estimate: Any) -> Preview:
    """Turn the costs module's estimate (an object with ``to_dict()`` or a dict) into rows."""
    data = estimate.to_dict() if hasattr(estimate, "to_dict") else dict(estimate)
    lines: list[tuple[str, str]] = []
    cost = data.get("training_cost_usd")
    if cost is not None:
        lines.append(("Training", format_usd(cost)))
    if data.get("billable_tokens") is not None:
        lines.append(("Billable tokens", f"{int(data['billable_tokens']):,}"))
    if data.get("epochs") is not None:
        lines.append(("Epochs", str(data["epochs"])))
    if data.get("training_time_s") is not None:
        lines.append(("Time", _duration(float(data["training_time_s"]))))
    if data.get("peak_memory_bytes") is not None:
        from providers.local.memory import gb  # the unit and rounding the refusal uses

        lines.append(("GPU memory", gb(data["peak_memory_bytes"])))
    if data.get("cost_per_1k_requests_usd") is not None:
        lines.append(("Per 1k requests", format_usd(data["cost_per_1k_requests_usd"])))
    if data.get("baseline_cost_per_1k_requests_usd") is not None:
        lines.append(("Few-shot base /1k", format_usd(data["baseline_cost_per_1k_requests_usd"])))
    breakeven = data.get("break_even_requests")
    if "break_even_requests" in data:
        lines.append(
            ("Break-even", "never" if breakeven is None else f"{int(breakeven):,} requests")
        )
    if data.get("serving_note"):
        lines.append(("Serving", str(data["serving_note"])))
    if data.get("source"):
        lines.append(("Prices", str(data["source"])))
    note = data.get("note") or data.get("formula") or ""
    return Preview(
        lines=lines,
        training_cost_usd=cost,
        spend_note=str(note),
        simulated=bool(data.get("simulated")),
        raw=data or None,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class LaunchRequest:
    name: str
    dataset_id: int
    provider: str
    base_model: str
    method: str
    hyperparameters: Hyperparameters
    options: dict[str, Any] = field(default_factory=dict)
    estimate: dict | None = None


def launch(request: LaunchRequest) -> int:
    """Launch the job with `app.jobs.launch.launch_job`; returns its id."""
    from app.jobs.launch import launch_job

    job = launch_job(
        request.provider,
        request.dataset_id,
        request.base_model,
        method=request.method,
        hyperparameters=request.hyperparameters,
        options=request.options,
        name=request.name,
    )
    if request.estimate is not None:
        _keep_estimate(job.id, request.estimate)
    return job.id


def _keep_estimate(job_id: int, estimate: dict) -> None:
    """Store the previewed estimate on the job (unless launch already stored one), so the
    job detail can compare it with the actual cost."""
    from app.database import get_engine
    from db import repository
    from db.engine import write_session

    with write_session(get_engine()) as session:
        job = repository.get_job(session, job_id)
        if job.estimate is None:
            job.estimate = estimate
        if job.estimated_cost_usd is None and estimate.get("training_cost_usd") is not None:
            job.estimated_cost_usd = float(estimate["training_cost_usd"])
        session.add(job)
