"""Launch a fine-tuning job on any registered provider.

The order matters for never losing or duplicating a billed job:
1. the job row is inserted (status ``pending``, with its uid) in its own short transaction
   BEFORE anything is sent, so a crash later leaves a row to reconcile;
2. the provider uploads the data (``uploading``), then creates the job, tagging it with
   the uid (OpenAI: metadata ``ftm_job_id``) and reconciling by it after a lost response;
3. the remote id and status are recorded.

A refusal (bad data, a service that no longer accepts jobs...) ends the row ``failed``
with the provider's error {code, message, param}: kept, so the attempt and the reason stay
visible in `ftm jobs list`, and never left ``pending``/``uploading``. A create whose outcome
stayed unknown after every retry keeps its row with error code ``create_unconfirmed``;
the poller looks it up by uid and settles it (found: tracked; not found: failed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from app.jobs.providers import make_provider
from app.jobs.tracking import apply_remote
from app.settings import SettingsError, get_settings
from db import repository
from db.engine import read_session, write_session
from db.models import Dataset, Job
from db.storage import StorageMissing
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import Hyperparameters, JobSpec, JobStatus, ProviderQuote


class LaunchError(Exception):
    """A launch that did not happen or did not finish; the message says why and what to do."""

    def __init__(self, message: str, *, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class LaunchRejected(LaunchError):
    """Refused before anything was recorded or sent (bad spec, unknown dataset...)."""


class LaunchDeclined(LaunchError):
    """The user chose not to go ahead after the warnings; nothing was recorded."""


class LaunchFailed(LaunchError):
    """The provider refused; the job row ends ``failed`` with the provider's error."""

    def __init__(self, message: str, *, job_id: int, error: dict[str, Any]) -> None:
        super().__init__(message, job_id=job_id)
        self.error = error


class LaunchUnconfirmed(LaunchError):
    """The create's outcome is unknown; the poller settles it by uid."""


def resolve_dataset(session: Session, name_or_id: str | int) -> Dataset:
    """A dataset by id, name (its newest version) or content-hash prefix."""
    from app.datasets.store import get_dataset

    try:
        return get_dataset(session, name_or_id)
    except LookupError as exc:
        raise LaunchRejected(str(exc.args[0]) if exc.args else str(exc)) from None


def _hyperparameters(value: Hyperparameters | dict[str, Any] | None) -> Hyperparameters:
    if value is None:
        return Hyperparameters()
    if isinstance(value, Hyperparameters):
        return value
    unknown = set(value) - set(Hyperparameters.__dataclass_fields__)
    if unknown:
        raise LaunchRejected(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    return Hyperparameters(**{k: v for k, v in value.items() if v is not None})


_PATH_FIELDS = ("train_path", "validation_path")
"""The spec's files: kept in the snapshot as storage-root references (`db.storage`)."""


def _snapshot(spec: JobSpec) -> dict[str, Any]:
    store = get_settings().file_store
    snapshot = asdict(spec)
    for name in _PATH_FIELDS:
        snapshot[name] = store.ref_for(snapshot[name])
    return snapshot


def spec_from_snapshot(snapshot: dict[str, Any]) -> JobSpec:
    """The `JobSpec` a job row's ``spec`` snapshot was taken from (`_snapshot`), its files
    as paths of this machine."""
    store = get_settings().file_store
    fields = {k: v for k, v in snapshot.items() if k in JobSpec.__dataclass_fields__}
    fields["hyperparameters"] = Hyperparameters(**(fields.get("hyperparameters") or {}))
    for name in _PATH_FIELDS:
        if fields.get(name):
            fields[name] = str(store.where(fields[name]))
    return JobSpec(**fields)


def launch_warnings(provider: Provider, spec: JobSpec, today: date | None = None) -> list[str]:
    """What to tell the user before creating: the provider's job-creation cutoff and the
    base model's retirement, when due (from the one lifecycle service), then whatever the
    provider itself declares (`Provider.launch_warnings`)."""
    from app.lifecycle import creation_warnings

    return creation_warnings(provider, spec.base_model, today) + provider.launch_warnings(spec)


@dataclass(frozen=True)
class EstimatePreview:
    """The cost of a launch as known before anything is recorded or sent."""

    estimate: dict[str, Any] | None
    """`app.costs.launch.LaunchEstimate.to_dict()`, or None (see ``no_estimate``)."""
    no_estimate: str | None
    """Why there is no estimate (a provider without prices...)."""
    simulated: bool
    """The provider is the sandbox emulator: nothing is billed."""
    billed: bool
    """The job spends money (a per-token-billing provider, not simulated): confirm first."""


@dataclass(frozen=True)
class LaunchPlan:
    """Everything known about a launch before anything is recorded or sent: the one
    answer `ftm launch` and the TUI wizard both show (and `launch_job` acts on)."""

    spec: JobSpec
    dataset_id: int
    problems: list[str]
    """Why the provider cannot run this job (a launch is refused while any remain)."""
    warnings: list[str]
    """What to tell the user before creating (service cutoff, model retirement...)."""
    estimate: EstimatePreview
    provider_display_name: str
    provider: Provider | None = field(repr=False, default=None)
    """The built provider, or None when it could not be built (see ``problems``)."""
    engine: Engine | None = field(repr=False, default=None)


def plan_launch(
    provider_name: str,
    dataset_name_or_id: str | int,
    base_model: str,
    *,
    method: str = "supervised",
    hyperparameters: Hyperparameters | dict[str, Any] | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    name: str | None = None,
    engine: Engine | None = None,
    provider: Provider | None = None,
    today: date | None = None,
) -> LaunchPlan:
    """Validate, warn and price a launch without recording or sending anything.

    A provider that cannot be built (a missing API key...) is a problem of the plan, not
    an exception: the estimate is still worth showing while the user fixes it.

    Raises:
        LaunchRejected: the dataset is unknown or the hyperparameters are not recognised.
    """
    if engine is None:
        from app.database import get_engine

        engine = get_engine()
    problems: list[str] = []
    display_name = provider_name
    if provider is None:
        try:
            provider = make_provider(provider_name, engine=engine)
        except ProviderError as exc:
            problems.append(exc.message)
        except SettingsError as exc:  # the provider's own table is wrong: say which line
            problems.append(str(exc))
    with read_session(engine) as session:
        dataset = resolve_dataset(session, dataset_name_or_id)
    from app.datasets.store import dataset_file

    try:
        train = dataset_file(dataset, "train")
    except StorageMissing as exc:
        raise LaunchRejected(str(exc)) from None
    validation = train.with_name("validation.jsonl")
    if not validation.is_file():  # a URL root: copied down on its own
        try:
            validation = dataset_file(dataset, "validation")
        except StorageMissing:
            pass
    spec = JobSpec(
        name=name or f"{dataset.name}-{base_model}"[:120],
        base_model=base_model,
        train_path=str(train),
        validation_path=str(validation) if validation.is_file() else None,
        method=method,
        hyperparameters=_hyperparameters(hyperparameters),
        suffix=suffix,
        seed=seed,
        options=dict(options or {}),
        ftm_job_uid=uuid.uuid4().hex,
        dataset_hash=dataset.content_hash,
    )
    warnings: list[str] = []
    simulated = billed = False
    if provider is not None:
        display_name = provider.display_name
        problems += provider.validate_spec(spec)
        warnings = launch_warnings(provider, spec, today)
        simulated = provider.simulated
        billed = bool(provider.capabilities.per_token_billing) and not simulated
    estimate, no_estimate = _estimate(engine, dataset.id, provider_name, spec, today)
    return LaunchPlan(
        spec=spec,
        dataset_id=dataset.id,
        problems=problems,
        warnings=warnings,
        estimate=EstimatePreview(
            estimate=estimate, no_estimate=no_estimate, simulated=simulated, billed=billed
        ),
        provider_display_name=display_name,
        provider=provider,
        engine=engine,
    )


def launch_job(
    provider_name: str,
    dataset_name_or_id: str | int,
    base_model: str,
    *,
    method: str = "supervised",
    hyperparameters: Hyperparameters | dict[str, Any] | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    confirm: Callable[[list[str]], bool] | None = None,
    on_estimate: Callable[[EstimatePreview], None] | None = None,
    on_quote: Callable[[ProviderQuote], None] | None = None,
    name: str | None = None,
    engine: Engine | None = None,
    provider: Provider | None = None,
    today: date | None = None,
) -> Job:
    """Launch a job and return its row (with remote id and status).

    Args:
        confirm: called with the warnings (possibly empty) before anything is recorded;
            returning False declines. ``None`` goes ahead.
        on_estimate: called with the cost estimate (`EstimatePreview`) before ``confirm``,
            so a launch that spends money can state its price before asking.
        on_quote: called with the provider's own price (`Provider.quote`), once the data
            is uploaded and before the job is created, to show it beside ftm's estimate.
        provider: an already built provider (otherwise built from the settings).

    Raises:
        LaunchRejected, LaunchDeclined: nothing recorded.
        LaunchFailed: the provider refused; the row is ``failed`` with its error.
        LaunchUnconfirmed: the outcome is unknown; the poller settles it.
    """
    plan = plan_launch(
        provider_name,
        dataset_name_or_id,
        base_model,
        method=method,
        hyperparameters=hyperparameters,
        suffix=suffix,
        seed=seed,
        options=options,
        name=name,
        engine=engine,
        provider=provider,
        today=today,
    )
    if plan.provider is None:  # not built: its reason says what to set
        raise LaunchRejected("; ".join(plan.problems))
    if plan.problems:
        raise LaunchRejected(
            f"{plan.provider_display_name} cannot run this job: " + "; ".join(plan.problems)
        )
    engine, provider, spec, dataset_id = plan.engine, plan.provider, plan.spec, plan.dataset_id
    warnings = plan.warnings
    estimate, no_estimate = plan.estimate.estimate, plan.estimate.no_estimate
    if on_estimate is not None:
        on_estimate(plan.estimate)
    if confirm is not None and not confirm(warnings):
        raise LaunchDeclined("launch cancelled; nothing was recorded or sent")

    # 1. the row first, in its own transaction, before any network call
    with write_session(engine) as session:
        job = Job(
            uid=spec.ftm_job_uid,
            name=spec.name,
            provider=provider_name,
            base_model=base_model,
            dataset_id=dataset_id,
            method=method,
            spec=_snapshot(spec),
            simulated=provider.simulated,
            estimate=estimate,
            estimated_cost_usd=(estimate or {}).get("training_cost_usd"),
        )
        session.add(job)
        session.flush()
        repository.set_status(session, job, JobStatus.UPLOADING)
        if no_estimate:
            repository.add_local_event(
                session, job, f"No cost estimate: {no_estimate}", level="warn", key="no-estimate"
            )
        job_id = job.id

    # 2. upload and create (network, outside any transaction)
    try:
        prepared = provider.prepare(spec)
    except ProviderError as exc:
        _fail(engine, job_id, exc, "uploading the data")
    except BaseException:  # Ctrl+C, a crash: nothing was created, say so on the row
        _fail_quietly(
            engine,
            job_id,
            "launch interrupted while uploading; nothing was created at the provider",
        )
        raise
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        job.spec = _snapshot(replace(prepared))
        session.add(job)
    _check_quote(engine, job_id, provider, prepared, on_quote)
    try:
        remote = provider.create(prepared)
    except ProviderError as exc:
        if exc.code == "create_unconfirmed":
            _mark_unconfirmed(engine, job_id, exc.message, resend=True)
            raise LaunchUnconfirmed(
                f"job {job_id}: {exc.message}. `ftm watch` (or the TUI) keeps looking it up by its id and settles it.",
                job_id=job_id,
            ) from None
        _fail(engine, job_id, exc, "creating the job")
    except BaseException:  # interrupted mid-create: it may exist; the poller looks it up
        _mark_unconfirmed(engine, job_id, "launch interrupted while creating the job")
        raise

    # 3. what the provider made
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        apply_remote(session, job, remote, now=datetime.now(UTC), allow_terminal=False)
        repository.add_local_event(
            session, job, f"Created at {provider.display_name} as {job.remote_id}", key="created"
        )
        job.last_progress_at = datetime.now(UTC)
    if remote.status.is_terminal:
        # already over (found after a lost response): record its end in full now, or
        # leave it to the poller if the provider cannot be reached this moment
        from app.jobs.actions import refresh_job

        try:
            refresh_job(job_id, engine=engine, provider=provider)
        except ProviderError:
            pass
    with read_session(engine) as session:
        return repository.get_job(session, job_id)


def _estimate(
    engine: Engine, dataset_id: int, provider_name: str, spec: JobSpec, today: date | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The cost estimate snapshotted on the job (app.costs), or why there is none.

    An estimate is a courtesy: it never blocks a launch (a plugin provider has no prices).
    """
    try:
        from app.costs.launch import estimate_for_launch
    except ModuleNotFoundError as exc:
        if exc.name not in ("app.costs", "app.costs.launch"):
            raise
        return None, None
    try:
        with read_session(engine) as session:
            estimate = estimate_for_launch(
                session,
                dataset_id=dataset_id,
                provider=provider_name,
                base_model=spec.base_model,
                method=spec.method,
                hyperparameters=spec.hyperparameters,
                options=spec.options,
                today=today,
            )
    except Exception as exc:  # see docstring; the reason is kept as an event
        return None, f"{type(exc).__name__}: {exc}"
    return estimate.to_dict(), None


def _check_quote(
    engine: Engine,
    job_id: int,
    provider: Provider,
    prepared: JobSpec,
    on_quote: Callable[[ProviderQuote], None] | None,
) -> None:
    """Ask the provider's own price before creating: kept on the row beside ftm's
    estimate, handed to ``on_quote``, and a quote that may not proceed ends the launch
    (row ``failed`` with the reason) before anything is created."""
    try:
        quote = provider.quote(prepared)
    except ProviderError as exc:
        _fail(engine, job_id, exc, "asking for the provider's price")
    if quote is None:
        return
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        job.estimate = {**(job.estimate or {}), "provider_quote": asdict(quote)}
        session.add(job)
    if on_quote is not None:
        on_quote(quote)
    if not quote.allowed_to_proceed:
        reason = quote.reason or f"{provider.display_name} will not run this job"
        _fail(
            engine,
            job_id,
            ProviderError(f"{reason}; nothing was created", code="quote_refused"),
            "checking the provider's price",
        )


def _mark_unconfirmed(engine: Engine, job_id: int, message: str, *, resend: bool = False) -> None:
    """The create may or may not have happened: the poller settles it by uid.

    ``resend``: if the job never appears, the poller may send the create again (the
    provider gave up on a create the user still wants; not after an interruption).
    """
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        # "since" starts the poller's grace window (PollerSettings.unconfirmed_grace_s)
        job.error = {
            "code": "create_unconfirmed",
            "message": message,
            "param": None,
            "since": datetime.now(UTC).isoformat(),
            "resend": resend,
        }
        session.add(job)


def _fail_quietly(engine: Engine, job_id: int, message: str) -> None:
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        job.error = {"code": "interrupted", "message": message, "param": None}
        repository.set_status(session, job, JobStatus.FAILED)


def _fail(engine: Engine, job_id: int, exc: ProviderError, doing: str) -> None:
    """End the row ``failed`` with the provider's error, then raise `LaunchFailed`."""
    error = {"code": exc.code, "message": exc.message, "param": exc.param}
    with write_session(engine) as session:
        job = repository.get_job(session, job_id)
        job.error = error
        repository.set_status(session, job, JobStatus.FAILED)
        repository.add_local_event(
            session, job, f"Failed while {doing}: {exc.message}", level="error", key="launch-failed"
        )
    raise LaunchFailed(
        f"job {job_id} failed while {doing}: {exc.message}", job_id=job_id, error=error
    )
