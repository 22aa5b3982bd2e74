"""The estimate snapshotted onto a job before launch (the wizard's preview and the
confirmation of a launch that spends money state it; `actuals` compares it at the end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session

from app.costs.breakeven import break_even_requests
from app.costs.catalog import Catalog, load_catalog
from app.costs.compare import DEFAULT_HOSTED_MODEL
from app.costs.dataset_inputs import (
    DEFAULT_TOKENIZER,
    local_model_counts,
    prompt_profile,
    token_counts,
)
from app.costs.errors import CostError
from app.costs.hosted import estimate_hosted_training
from app.costs.inference import hosted_request_cost, self_hosted_serving, serving_gpu_for
from app.costs.local_memory import METHODS, LocalTrainingConfig
from app.costs.local_training import estimate_local_training
from app.costs.model_shapes import model_shape, resolve_targets
from app.costs.money import usd
from app.jobs.providers import capabilities_of
from app.lifecycle import serving_window
from db.models import Dataset

LOCAL_METHOD_ALIASES = {"supervised": "lora", "sft": "lora"}
LAUNCH_REQUESTS_PER_MONTH = 10_000
"""Traffic assumed for the per-request and break-even lines of a launch preview."""
LAUNCH_HORIZON_MONTHS = 12
HOURS_PER_MONTH = 24 * 365.25 / 12
"""An average month of an always-on deployment."""
"""The horizon a launch preview checks the model serves through (the Costs tab's default),
so both say the same "stops at month N"."""


@dataclass
class LaunchEstimate:
    """What a launch will cost: the keys the wizard and the job detail read, plus every
    input under ``inputs``."""

    provider: str
    base_model: str
    method: str
    dataset_id: int
    training_cost_usd: float
    cost_per_1k_requests_usd: float | None
    baseline_cost_per_1k_requests_usd: float | None
    break_even_requests: float | None
    source: str
    note: str
    catalog_as_of: str
    simulated: bool = False
    billable_tokens: int | None = None
    epochs: int | None = None
    training_time_s: float | None = None
    peak_memory_bytes: float | None = None
    gpu: str | None = None
    usd_per_hour: float | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    """`app.lifecycle.ServingWindow.to_dict()` over `LAUNCH_HORIZON_MONTHS`."""
    serving_note: str | None = None
    """"stops at month N of 12 (serves until ...)", or None when it serves throughout."""
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def resolve_gradient_checkpointing(
    method: str, options: dict[str, Any] | None, hardware: str | None = None
) -> bool:
    """Gradient checkpointing as the local provider will train with it.

    The option is resolved by `providers.local.options.resolve_hyperparameters` (the text
    "false" means false; ``auto``, the default, means on with a CUDA GPU, off on the CPU).
    When the estimate is for named ``hardware`` (not necessarily this machine), ``auto``
    follows that hardware: on for a GPU, off for ``cpu``.
    """
    from providers.errors import SpecRejected
    from providers.local.options import AUTO, resolve_hyperparameters
    from providers.types import JobSpec

    o = dict(options or {})
    spec = JobSpec(name="estimate", base_model="", train_path="", method=method, options=o)
    try:
        resolved = bool(resolve_hyperparameters(spec)["gradient_checkpointing"])
    except SpecRejected as e:
        raise CostError(f"cannot estimate this local job: {e.message}") from None
    raw = o.get("gradient_checkpointing", AUTO)
    if hardware is not None and isinstance(raw, str) and raw.strip().lower() == AUTO:
        on_cpu = hardware == "cpu" or str(o.get("device", "")).lower() == "cpu"
        return not on_cpu
    return resolved


def local_config_from_options(
    method: str,
    options: dict[str, Any] | None,
    n_epochs: int | str | None = None,
    *,
    hardware: str | None = None,
) -> LocalTrainingConfig:
    """The local provider's options (providers/local/options.py names) as a training config
    (``hardware``: the catalog key the estimate is for; see
    `resolve_gradient_checkpointing`)."""
    gradient_checkpointing = resolve_gradient_checkpointing(method, options, hardware)
    o = dict(options or {})
    method = LOCAL_METHOD_ALIASES.get(method, method)
    dpo = method == "dpo"
    if dpo:
        method = o.get("dpo_tuning", "lora")
    if method not in METHODS:
        raise CostError(f"unknown local method {method!r}; known: {', '.join(METHODS)}")
    epochs = o.get("epochs", n_epochs)
    return LocalTrainingConfig(
        method=method,
        rank=int(o.get("r", 16)),
        targets=resolve_targets(o.get("target_modules", "all-linear")),
        seq_len=int(o.get("max_seq_len", 1024)),
        micro_batch=int(o.get("batch_size", 8)),
        packing=bool(o.get("packing", False)),
        gradient_checkpointing=gradient_checkpointing,
        n_gpu=int(o.get("n_gpus", 1)),
        epochs=int(epochs) if epochs not in (None, "auto") else 3,
        dpo=dpo,
        num_virtual_tokens=int(o.get("num_virtual_tokens", 20)),
    )


def this_machine_hardware() -> str:
    """The catalog key of what local jobs train on here: the first GPU, else the CPU."""
    from app.costs.calibration import hardware_key
    from providers.local.hardware import gpus

    found = gpus()
    return hardware_key(found[0].name) if found else "cpu"


def _trains_all_weights(provider: str, method: str, options: dict[str, Any] | None) -> bool:
    """Whether this launch is a full fine-tune, as the provider reads its own options
    (`Provider.recipe_from_job` on the spec): priced at its full rate where it has one."""
    from app.jobs.providers import provider_class

    cls = provider_class(provider)
    if cls is None:
        return False
    spec = {"options": dict(options or {}), "hyperparameters": {}}
    return cls.recipe_from_job(method, None, spec).tuning == "full"


def estimate_for_launch(
    session: Session | None = None,
    *,
    dataset_id: int,
    provider: str,
    base_model: str,
    method: str = "supervised",
    hyperparameters: Any = None,
    options: dict[str, Any] | None = None,
    gpu: str | None = None,
    requests_per_month: float = LAUNCH_REQUESTS_PER_MONTH,
    catalog: Catalog | None = None,
    today: date | None = None,
) -> LaunchEstimate:
    """Price one launch. Opens its own read session when none is given."""
    if session is None:
        from app.database import get_engine
        from db.engine import read_session

        with read_session(get_engine()) as own:
            return estimate_for_launch(
                own,
                dataset_id=dataset_id,
                provider=provider,
                base_model=base_model,
                method=method,
                hyperparameters=hyperparameters,
                options=options,
                gpu=gpu,
                requests_per_month=requests_per_month,
                catalog=catalog,
                today=today,
            )
    catalog = catalog or load_catalog()
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise CostError(f"no dataset with id {dataset_id}; list them with `ftm data list`")
    n_epochs = getattr(hyperparameters, "n_epochs", "auto") if hyperparameters else "auto"
    train = token_counts(session, dataset, DEFAULT_TOKENIZER)
    profile = prompt_profile(dataset, "o200k_base")
    as_of = catalog.as_of.isoformat()

    capabilities = capabilities_of(provider)
    if capabilities.per_token_billing:  # the catalog's per-token prices
        from app.jobs.providers import make_provider

        hosted = estimate_hosted_training(
            train.counts,
            base_model,
            catalog,
            n_epochs=n_epochs,
            provider=provider,
            full=_trains_all_weights(provider, method, options),
        )
        ft = hosted_request_cost(profile, base_model, catalog, fine_tuned=True, provider=provider)
        base = hosted_request_cost(
            profile, base_model, catalog, fine_tuned=False, provider=provider
        )
        # The provider knows whether it talks to the sandbox (its own settings say).
        built = make_provider(provider)
        simulated = built.simulated
        # A model served from a deployment billed by the hour costs that, used or not:
        # spread over the requests of a month, as the cost model's always-on costs are.
        hourly = catalog.hosted_model(hosted.model, provider).hosting_per_hour
        hosting_month = (hourly or 0.0) * HOURS_PER_MONTH
        ft_per_request = ft.usd_per_request + hosting_month / requests_per_month
        hosting_note = (
            f"; hosting its deployment {usd(hourly)}/hour = {usd(hosting_month)}/month over "
            f"{requests_per_month:,.0f} requests/month"
            if hourly
            else ""
        )
        window = serving_window(provider, hosted.model, LAUNCH_HORIZON_MONTHS, today)
        return LaunchEstimate(
            provider=provider,
            base_model=hosted.model,
            method=method,
            dataset_id=dataset_id,
            training_cost_usd=hosted.cost_usd,
            billable_tokens=hosted.billable_tokens,
            epochs=hosted.epochs,
            cost_per_1k_requests_usd=ft_per_request * 1000,
            baseline_cost_per_1k_requests_usd=base.usd_per_request * 1000,
            break_even_requests=break_even_requests(
                hosted.cost_usd, ft_per_request, base.usd_per_request
            ),
            source=f"{hosted.price_source} (as of {hosted.price_as_of})",
            note=(
                f"{hosted.billable_tokens:,} billable tokens = "
                f"sum(min({hosted.token_limit}, tokens)) x {hosted.epochs} epochs "
                f"({hosted.epochs_rule}) x {usd(hosted.usd_per_1m_tokens)}/1M"
                + hosting_note
                + ("; sandbox: nothing is billed" if simulated else "")
            ),
            catalog_as_of=as_of,
            simulated=simulated,
            serving=window.to_dict(),
            serving_note=window.note,
            inputs={
                "training": hosted.to_dict(),
                "fine_tuned_request": ft.to_dict(),
                "hosting": {"usd_per_hour": hourly, "usd_per_month": hosting_month},
                "baseline_request": base.to_dict(),
                "profile": profile.to_dict(),
            },
        )
    if not capabilities.runs_locally:
        raise CostError(
            f"no cost model for provider {provider!r}: ftm prices providers billed per token "
            "(from its price catalog) and providers that train on this machine"
        )

    shape = model_shape(base_model)
    hardware = gpu or this_machine_hardware()
    cfg = local_config_from_options(method, options, n_epochs, hardware=hardware)
    counts = local_model_counts(session, dataset, base_model)
    note = (
        f"approximated with {counts.tokenizer} counts"
        if counts.approximate_for
        else f"exact {counts.tokenizer} counts"
    )
    local = estimate_local_training(
        session, counts.counts, shape, cfg, catalog, gpu=hardware, tokenizer_note=note
    )
    # Serving is priced on the cheapest GPU that holds the model, wherever it trains.
    per_1k = baseline_1k = r_star = None
    try:
        serving = self_hosted_serving(profile, shape, serving_gpu_for(shape, catalog), catalog)
    except CostError:
        serving = None
    if serving is not None:
        base = hosted_request_cost(profile, DEFAULT_HOSTED_MODEL, catalog, fine_tuned=False)
        per_request = serving.monthly_usd(requests_per_month) / requests_per_month
        per_1k, baseline_1k = per_request * 1000, base.usd_per_request * 1000
        r_star = break_even_requests(local.cost_usd, per_request, base.usd_per_request)
    window = serving_window(provider, base_model, LAUNCH_HORIZON_MONTHS, today)
    return LaunchEstimate(
        provider=provider,
        base_model=base_model,
        method=cfg.method,
        dataset_id=dataset_id,
        training_cost_usd=local.cost_usd,
        epochs=cfg.epochs,
        training_time_s=local.train_seconds + local.overhead_seconds,
        peak_memory_bytes=local.memory.total,
        gpu=local.gpu,
        usd_per_hour=local.usd_per_hour,
        cost_per_1k_requests_usd=per_1k,
        baseline_cost_per_1k_requests_usd=baseline_1k,
        break_even_requests=r_star,
        source=f"{local.price_source} (as of {local.price_as_of}); MFU {local.calibration.mfu:.3f} "
        f"({local.calibration.source})",
        note=(
            f"{local.tokens.trained:,} tokens x {local.flops_per_token:.3g} FLOPs/token / "
            f"({local.n_gpu} x {catalog.gpu(local.gpu).tflops_bf16:g} TFLOP/s x MFU "
            f"{local.calibration.mfu:.3f}) + {local.overhead_seconds:.0f} s overhead; {note}"
            + "".join(f"; {w}" for w in local.warnings)
        ),
        catalog_as_of=as_of,
        serving=window.to_dict(),
        serving_note=window.note,
        inputs={"training": local.to_dict(), "profile": profile.to_dict()},
    )
