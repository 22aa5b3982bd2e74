"""The side-by-side comparison for one dataset and one level of traffic.

`compare(...)` prices every option — the base model with k few-shot examples (the
baseline), each hosted fine-tune, each local fine-tune served on a GPU — and answers the
question ftm asks before any money is spent: which is cheapest at this traffic, and after
how many requests does each fine-tune pay for itself. Every figure carries its inputs and
the date of the price it came from (``to_dict()``).

The horizon respects the calendar (`HORIZON_RULE`): an option whose model stops serving
inside the horizon (the lifecycle service says when) is priced only for the months it
serves, marked "stops at month N", and left out of the cheapest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
from sqlmodel import Session

from app.costs.breakeven import break_even_requests, cumulative_cost
from app.costs.catalog import Catalog, load_catalog
from app.costs.dataset_inputs import (
    DEFAULT_TOKENIZER,
    PromptProfile,
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
from app.costs.traffic import Traffic, assumed
from app.lifecycle import (
    DAYS_PER_MONTH,
    ServingWindow,
    creation_cutoff,
    retirement,
    serving_window,
)
from app.lifecycle import today as lifecycle_today
from db.models import Dataset

DEFAULT_HOSTED_MODEL = "gpt-4o-mini-2024-07-18"
DEFAULT_LOCAL_MODEL = "meta-llama/Llama-3.1-8B"
ALL_PROVIDERS = "all"
"""``--provider all``: every option of every provider that declares prices."""
HORIZON_RULE = (
    "an option that stops serving inside the horizon is priced only for the "
    "months it serves, marked 'stops at month N' and left out of the cheapest"
)


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
    serving: dict = field(default_factory=dict)
    """`app.lifecycle.ServingWindow.to_dict()`: serves_until, months_served,
    stops_at_month (None: the whole horizon), serves_whole_horizon."""

    @property
    def stops_at_month(self) -> int | None:
        return self.serving.get("stops_at_month")

    @property
    def stop_mark(self) -> str:
        """' (mN)' after the horizon total of an option that stops in month N, else ''."""
        return "" if self.stops_at_month is None else f" (m{self.stops_at_month})"

    @property
    def serves_whole_horizon(self) -> bool:
        return self.serving.get("serves_whole_horizon", True)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    dataset: dict
    requests_per_month: float
    horizon_months: float
    profile: dict
    options: list[Option]
    cheapest: str | None
    """Key of the option with the lowest total over the horizon among those that serve
    all of it; None when none does."""
    catalog: dict
    today: str
    horizon_rule: str = HORIZON_RULE
    traffic: dict = field(default_factory=dict)
    """`app.costs.traffic.Traffic.to_dict()`: where requests_per_month (and, when measured,
    the prompt and reply sizes) came from."""

    @property
    def baseline(self) -> Option:
        return next(o for o in self.options if o.kind == "baseline")

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)

    def curves(self, points: int = 50) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Cumulative cost of each option from 0 to the horizon's requests."""
        requests = np.linspace(0, self.requests_per_month * self.horizon_months, points)
        return requests, {
            o.key: cumulative_cost(o.one_time_usd, o.per_request_usd, requests)
            for o in self.options
        }

    @property
    def stopping(self) -> list[Option]:
        """Options that stop serving inside the horizon (left out of the cheapest)."""
        return [o for o in self.options if not o.serves_whole_horizon]

    def verdict(self) -> str:
        """The cheapest over the horizon, and what was left out because it stops serving
        first: one sentence, the same in `ftm estimate` and the Costs tab."""
        from app.costs.money import usd

        months = f"{self.horizon_months:g}"
        if self.cheapest is None:
            text = f"No option serves all {months} months at this traffic"
        else:
            best = self.option(self.cheapest)
            text = f"Cheapest over {months} months at this traffic: {best.label} ({usd(best.horizon_usd)})"
        if self.stopping:
            text += "; left out because they stop serving inside the horizon: " + ", ".join(
                f"{o.label} ({_stop(o.stops_at_month)})" for o in self.stopping
            )
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "stopping": [o.key for o in self.stopping],
            "verdict": self.verdict(),
        }


def compare(
    session: Session,
    dataset: Dataset,
    *,
    provider: str = "all",
    hosted_models: list[str] | None = None,
    local_models: list[str] | None = None,
    baseline_model: str | None = None,
    local_config: LocalTrainingConfig | None = None,
    gpu: str | None = None,
    cloud: str | None = None,
    serve_gpu: str | None = None,
    utilization: float | None = None,
    requests_per_month: float = 10_000,
    horizon_months: float = 12,
    k: int | None = None,
    n_epochs: int | str = "auto",
    catalog: Catalog | None = None,
    today: date | None = None,
    traffic: Traffic | None = None,
) -> Comparison:
    """Price every option for ``dataset`` at ``requests_per_month``: each model on every
    provider in scope (``provider``, or all that declare prices) that prices it.

    ``traffic`` (`app.costs.traffic.traffic_for`) replaces ``requests_per_month``; when
    measured, its mean prompt and reply sizes replace the dataset's (the baseline still
    adds its k examples to the measured prompt)."""
    traffic = traffic or assumed(requests_per_month)
    requests_per_month = traffic.requests_per_month
    catalog = catalog or load_catalog()
    choices = price_scopes(catalog)
    if provider not in choices:
        raise CostError(f"unknown provider {provider!r}; known: {', '.join(choices)}")
    if requests_per_month <= 0 or horizon_months <= 0:
        raise CostError("requests per month and the horizon must be positive")
    today = today or lifecycle_today()
    cfg = local_config or LocalTrainingConfig()
    in_scope = [n for n in catalog.priced if provider in (ALL_PROVIDERS, n)]
    token_providers = [n for n in in_scope if catalog.priced[n].basis == "tokens"]
    hardware_providers = [n for n in in_scope if catalog.priced[n].basis == "hardware"]
    # By default each provider in scope is priced on its default model.
    default_hosted = list(dict.fromkeys(_default_hosted_model(catalog, n) for n in token_providers))
    hosted_models = (hosted_models or default_hosted) if token_providers else []
    local_models = (local_models or [DEFAULT_LOCAL_MODEL]) if hardware_providers else []
    baseline_model = baseline_model or (
        hosted_models[0]
        if hosted_models
        else _default_hosted_model(catalog, next(iter(catalog.token_priced), ""))
    )
    # Resolve every name first, so a typo fails before any work.
    hosted_pairs = [
        (name, m) for m in hosted_models for name in _pricing(catalog, m, token_providers)
    ]
    if not catalog.token_priced:
        raise CostError(
            "no installed provider declares per-token prices, which the few-shot baseline needs"
        )
    baseline_provider = _pricing(
        catalog, baseline_model, token_providers or list(catalog.token_priced)
    )[0]
    several_hosted = len({name for name, _ in hosted_pairs}) > 1
    shapes = [model_shape(m) for m in local_models]
    if gpu:
        catalog.gpu(gpu)
    if serve_gpu:
        parse_gpu_set(serve_gpu, catalog)

    train = token_counts(session, dataset, DEFAULT_TOKENIZER)
    profile = _measured_shape(
        prompt_profile(dataset, DEFAULT_TOKENIZER.split(":")[1], k=k), traffic
    )

    base_cost = hosted_request_cost(
        profile, baseline_model, catalog, fine_tuned=False, provider=baseline_provider
    )
    c_base = base_cost.usd_per_request
    window = serving_window(baseline_provider, base_cost.model, horizon_months, today)
    options = [
        Option(
            key=f"baseline:{base_cost.model}",
            label=f"{base_cost.model} {profile.k}-shot",
            kind="baseline",
            one_time_usd=0.0,
            per_request_usd=c_base,
            monthly_usd=c_base * requests_per_month,
            horizon_usd=c_base * requests_per_month * window.months_served,
            inference=base_cost.to_dict(),
            warnings=_lifecycle_warnings(baseline_provider, base_cost.model, window, today, None),
            serving=window.to_dict(),
        )
    ]

    for name, m in hosted_pairs:
        training = estimate_hosted_training(
            train.counts, m, catalog, n_epochs=n_epochs, tokenizer=train.tokenizer, provider=name
        )
        req = hosted_request_cost(profile, m, catalog, fine_tuned=True, provider=name)
        # A deployed fine-tune's hourly fee (when the provider charges one) is spread over
        # the month's requests, like an always-on GPU.
        hosting = catalog.hosted_model(m, name).hosting_per_hour or 0.0
        hosting_monthly = hosting * catalog.default("hours_per_month")
        per_request = req.usd_per_request + hosting_monthly / requests_per_month
        monthly = per_request * requests_per_month
        r_star = break_even_requests(training.cost_usd, per_request, c_base)
        r_months = None if r_star is None else r_star / requests_per_month
        window = serving_window(name, training.model, horizon_months, today)
        cutoff = creation_cutoff(name, today)
        warnings = [cutoff.message] if cutoff is not None else []
        warnings += _lifecycle_warnings(name, training.model, window, today, r_months)
        first = name == _pricing(catalog, m, token_providers)[0]
        options.append(
            Option(
                key=f"hosted:{training.model}" + ("" if first else f"@{name}"),
                label=f"{training.model} fine-tuned"
                + (f" on {catalog.priced[name].display_name}" if several_hosted else ""),
                kind="hosted",
                one_time_usd=training.cost_usd,
                per_request_usd=per_request,
                monthly_usd=monthly,
                horizon_usd=training.cost_usd + monthly * window.months_served,
                break_even_requests=r_star,
                break_even_months=r_months,
                training=training.to_dict(),
                inference=req.to_dict() | {"hosting_usd_per_hour": hosting},
                warnings=warnings,
                serving=window.to_dict(),
            )
        )

    several_local = len(hardware_providers) > 1
    for name, shape in [(n, shape) for n in hardware_providers for shape in shapes]:
        tokenizer = f"hf:{shape.name}"
        counts = local_model_counts(session, dataset, shape.name)
        note = (
            f"approximated with {counts.tokenizer} counts (no {tokenizer} counts stored)"
            if counts.approximate_for
            else f"exact {counts.tokenizer} counts"
        )
        training = estimate_local_training(
            session, counts.counts, shape, cfg, catalog, gpu=gpu, cloud=cloud, tokenizer_note=note
        )
        serving = self_hosted_serving(
            profile,
            shape,
            serve_gpu or serving_gpu_for(shape, catalog, cloud),
            catalog,
            utilization=utilization,
            cloud=cloud,
        )
        monthly = serving.monthly_usd(requests_per_month)
        per_request = monthly / requests_per_month
        r_star = break_even_requests(training.cost_usd, per_request, c_base)
        window = serving_window(name, shape.name, horizon_months, today)
        on = f" on {catalog.priced[name].display_name}" if several_local else ""
        options.append(
            Option(
                key=f"{name}:{shape.name}@{training.gpu}",
                label=f"{shape.name.split('/')[-1]} {cfg.method}{on} ({training.gpu}, serve {serving.gpu_set})",
                kind="local",
                one_time_usd=training.cost_usd,
                per_request_usd=per_request,
                monthly_usd=monthly,
                horizon_usd=training.cost_usd + monthly * window.months_served,
                break_even_requests=r_star,
                break_even_months=None if r_star is None else r_star / requests_per_month,
                training=training.to_dict(),
                inference=serving.to_dict()
                | {"gpus_needed": serving.gpus_needed(requests_per_month)},
                warnings=list(training.warnings)
                + list(serving.warnings)
                + _lifecycle_warnings(name, shape.name, window, today, None),
                serving=window.to_dict(),
            )
        )

    survivors = [o for o in options if o.serves_whole_horizon]
    cheapest = min(survivors, key=lambda o: o.horizon_usd).key if survivors else None
    return Comparison(
        dataset={
            "id": dataset.id,
            "name": dataset.name,
            "content_hash": dataset.content_hash,
            "train_examples": int(train.counts.size),
            "tokenizer": train.tokenizer,
            "train_tokens": int(train.counts.sum(dtype=np.int64)),
        },
        requests_per_month=requests_per_month,
        horizon_months=horizon_months,
        profile=profile.to_dict(),
        options=options,
        cheapest=cheapest,
        catalog={
            "as_of": catalog.as_of.isoformat(),
            "age_days": catalog.age_days(today),
            "files": list(catalog.files),
        },
        today=today.isoformat(),
        traffic=traffic.to_dict(),
    )


def _measured_shape(profile: PromptProfile, traffic: Traffic) -> PromptProfile:
    """The dataset's request shape, with the prompt and reply sizes the gateway measured
    (when it logged them)."""
    if not traffic.measured:
        return profile
    sizes = {
        "prompt_tokens": traffic.prompt_tokens,
        "output_tokens": traffic.completion_tokens,
    }
    return replace(profile, **{k: v for k, v in sizes.items() if v is not None})


def price_scopes(catalog: Catalog | None = None) -> list[str]:
    """What ``--provider`` may be: every installed provider that declares prices, the
    default one first, then ``all``. Without a catalog, asked of the registry."""
    if catalog is None:
        from app.jobs.providers import price_tables

        return [*price_tables(), ALL_PROVIDERS]
    return [*catalog.priced, ALL_PROVIDERS]


def _pricing(catalog: Catalog, model: str, providers: list[str]) -> list[str]:
    """Which of ``providers`` price ``model`` per token, in order.

    Raises:
        UnknownModel: none does (the message lists what they price and how to add it).
    """
    found = [n for n in providers if catalog.token_priced.get(n) and _prices(catalog, n, model)]
    if not found:
        catalog.hosted_model(model, providers[0] if len(providers) == 1 else None)
        raise CostError(f"no provider in scope prices {model!r}")  # priced outside the scope
    return found


def _prices(catalog: Catalog, provider: str, model: str) -> bool:
    prices = catalog.token_priced[provider]
    return prices.resolve(model) in prices.models


def _default_hosted_model(catalog: Catalog, provider: str) -> str:
    """The model ``provider`` is priced on by default: `DEFAULT_HOSTED_MODEL` where it
    prices it, else the first model it prices."""
    prices = catalog.token_priced.get(provider)
    if prices is None or not prices.models or _prices(catalog, provider, DEFAULT_HOSTED_MODEL):
        return DEFAULT_HOSTED_MODEL
    return next(iter(prices.models))


def _lifecycle_warnings(
    provider: str, model: str, window: ServingWindow, today: date, break_even_months: float | None
) -> list[str]:
    """The option's retirement (when announced), where it stops inside the horizon, and
    whether it pays back before it stops."""
    found = retirement(provider, model, today=today)
    if found is None:
        return []
    out = [found.message]
    if window.note:
        out.append(f"{window.note}; left out of the cheapest")
    if break_even_months is not None and break_even_months > found.days_left / DAYS_PER_MONTH:
        out.append("does not pay back before its base model retires")
    return out


def _stop(month: int | None) -> str:
    return f"stops at month {month}" if month else "already stopped serving"
