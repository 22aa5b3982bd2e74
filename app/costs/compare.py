"""The side-by-side comparison for one dataset and one level of traffic.

`compare(...)` prices every option — the base model with k few-shot examples (the
baseline), each hosted fine-tune, each local fine-tune served on a GPU — and answers the
question ftm asks before any money is spent: which is cheapest at this traffic, and after
how many requests does each fine-tune pay for itself. Every figure carries its inputs and
the date of the price it came from (``to_dict()``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
from sqlmodel import Session

from app.costs.breakeven import break_even_requests, cumulative_cost
from app.costs.catalog import Catalog, load_catalog
from app.costs.dataset_inputs import (
    DEFAULT_TOKENIZER,
    local_model_counts,
    prompt_profile,
    token_counts,
)
from app.costs.errors import CostError
from app.costs.hosted import estimate_hosted_training
from app.costs.inference import (
    hosted_request_cost,
    parse_gpu_set,
    self_hosted_serving,
    serving_gpu_for,
)
from app.costs.local_memory import LocalTrainingConfig
from app.costs.local_training import estimate_local_training
from app.costs.model_shapes import model_shape
from db.models import Dataset

DEFAULT_HOSTED_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_LOCAL_MODEL = "meta-llama/Llama-3.1-8B"
PROVIDERS = ("openai", "local", "all")


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    kind: str
    """baseline | hosted | local"""
    one_time_usd: float
    per_request_usd: float
    """At the expected traffic (self-hosting spreads its always-on cost over it)."""
    monthly_usd: float
    horizon_usd: float
    break_even_requests: float | None = None
    break_even_months: float | None = None
    training: dict | None = None
    inference: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    dataset: dict
    requests_per_month: float
    horizon_months: float
    profile: dict
    options: list[Option]
    cheapest: str
    """Key of the option with the lowest total over the horizon."""
    catalog: dict
    today: str

    @property
    def baseline(self) -> Option:
        return next(o for o in self.options if o.kind == "baseline")

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)

    def curves(self, points: int = 50) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Cumulative cost of each option from 0 to the horizon's requests."""
        requests = np.linspace(0, self.requests_per_month * self.horizon_months, points)
        return requests, {o.key: cumulative_cost(o.one_time_usd, o.per_request_usd, requests)
                          for o in self.options}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _months_until(day: date | None, today: date) -> float | None:
    return None if day is None else (day - today).days / 30.44


def compare(session: Session, dataset: Dataset, *, provider: str = "all",
            hosted_models: list[str] | None = None, local_models: list[str] | None = None,
            baseline_model: str | None = None, local_config: LocalTrainingConfig | None = None,
            gpu: str | None = None, cloud: str | None = None, serve_gpu: str | None = None,
            utilization: float | None = None, requests_per_month: float = 10_000,
            horizon_months: float = 12, k: int | None = None, n_epochs: int | str = "auto",
            catalog: Catalog | None = None, today: date | None = None) -> Comparison:
    """Price every option for ``dataset`` at ``requests_per_month``."""
    if provider not in PROVIDERS:
        raise CostError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    if requests_per_month <= 0 or horizon_months <= 0:
        raise CostError("requests per month and the horizon must be positive")
    catalog = catalog or load_catalog()
    today = today or date.today()
    cfg = local_config or LocalTrainingConfig()
    hosted_models = hosted_models or ([DEFAULT_HOSTED_MODEL] if provider != "local" else [])
    local_models = local_models or ([DEFAULT_LOCAL_MODEL] if provider != "openai" else [])
    if provider == "local":
        hosted_models = []
    if provider == "openai":
        local_models = []
    baseline_model = baseline_model or (hosted_models[0] if hosted_models else DEFAULT_HOSTED_MODEL)
    # Resolve every name first, so a typo fails before any work.
    for m in [*hosted_models, baseline_model]:
        catalog.hosted_model(m)
    shapes = [model_shape(m) for m in local_models]
    if gpu:
        catalog.gpu(gpu)
    if serve_gpu:
        parse_gpu_set(serve_gpu, catalog)

    train = token_counts(session, dataset, DEFAULT_TOKENIZER)
    profile = prompt_profile(dataset, DEFAULT_TOKENIZER.split(":")[1], k=k)
    horizon_requests = requests_per_month * horizon_months

    base_cost = hosted_request_cost(profile, baseline_model, catalog, fine_tuned=False)
    c_base = base_cost.usd_per_request
    options = [Option(
        key=f"baseline:{base_cost.model}", label=f"{base_cost.model} {profile.k}-shot",
        kind="baseline", one_time_usd=0.0, per_request_usd=c_base,
        monthly_usd=c_base * requests_per_month, horizon_usd=c_base * horizon_requests,
        inference=base_cost.to_dict(),
        warnings=_sunset_warnings(catalog.hosted_model(baseline_model).sunset, today,
                                  requests_per_month, None),
    )]

    for m in hosted_models:
        training = estimate_hosted_training(train.counts, m, catalog, n_epochs=n_epochs,
                                            tokenizer=train.tokenizer)
        req = hosted_request_cost(profile, m, catalog, fine_tuned=True)
        r_star = break_even_requests(training.cost_usd, req.usd_per_request, c_base)
        warnings = []
        if today > catalog.service_cutoff:
            warnings.append(f"OpenAI accepts no new fine-tuning jobs after "
                            f"{catalog.service_cutoff.isoformat()}")
        else:
            warnings.append(f"new jobs accepted until {catalog.service_cutoff.isoformat()} "
                            f"({(catalog.service_cutoff - today).days} days left)")
        warnings += _sunset_warnings(catalog.hosted_model(m).sunset, today, requests_per_month,
                                     r_star)
        options.append(Option(
            key=f"hosted:{training.model}", label=f"{training.model} fine-tuned", kind="hosted",
            one_time_usd=training.cost_usd, per_request_usd=req.usd_per_request,
            monthly_usd=req.usd_per_request * requests_per_month,
            horizon_usd=training.cost_usd + req.usd_per_request * horizon_requests,
            break_even_requests=r_star,
            break_even_months=None if r_star is None else r_star / requests_per_month,
            training=training.to_dict(), inference=req.to_dict(), warnings=warnings,
        ))

    for shape in shapes:
        tokenizer = f"hf:{shape.name}"
        counts = local_model_counts(session, dataset, shape.name)
        note = (f"approximated with {counts.tokenizer} counts (no {tokenizer} counts stored)"
                if counts.approximate_for else f"exact {counts.tokenizer} counts")
        training = estimate_local_training(session, counts.counts, shape, cfg, catalog, gpu=gpu,
                                           cloud=cloud, tokenizer_note=note)
        serving = self_hosted_serving(profile, shape, serve_gpu or serving_gpu_for(shape, catalog, cloud),
                                      catalog, utilization=utilization, cloud=cloud)
        monthly = serving.monthly_usd(requests_per_month)
        per_request = monthly / requests_per_month
        r_star = break_even_requests(training.cost_usd, per_request, c_base)
        options.append(Option(
            key=f"local:{shape.name}@{training.gpu}",
            label=f"{shape.name.split('/')[-1]} {cfg.method} ({training.gpu}, serve {serving.gpu_set})",
            kind="local", one_time_usd=training.cost_usd, per_request_usd=per_request,
            monthly_usd=monthly, horizon_usd=training.cost_usd + monthly * horizon_months,
            break_even_requests=r_star,
            break_even_months=None if r_star is None else r_star / requests_per_month,
            training=training.to_dict(),
            inference=serving.to_dict() | {"gpus_needed": serving.gpus_needed(requests_per_month)},
            warnings=list(training.warnings) + list(serving.warnings),
        ))

    cheapest = min(options, key=lambda o: o.horizon_usd).key
    return Comparison(
        dataset={"id": dataset.id, "name": dataset.name, "content_hash": dataset.content_hash,
                 "train_examples": int(train.counts.size), "tokenizer": train.tokenizer,
                 "train_tokens": int(train.counts.sum(dtype=np.int64))},
        requests_per_month=requests_per_month, horizon_months=horizon_months,
        profile=profile.to_dict(), options=options, cheapest=cheapest,
        catalog={"as_of": catalog.as_of.isoformat(), "age_days": catalog.age_days(today),
                 "files": list(catalog.files)},
        today=today.isoformat(),
    )


def _sunset_warnings(sunset: date | None, today: date, requests_per_month: float,
                     r_star: float | None) -> list[str]:
    if sunset is None:
        return []
    months = _months_until(sunset, today)
    out = [f"stops serving {sunset.isoformat()} ({(sunset - today).days} days)"]
    if r_star is not None and months is not None and r_star / requests_per_month > months:
        out.append("does not pay back before its base model retires")
    return out
