"""The one answer to "when does X stop accepting jobs, and when does it stop serving".

Every caller asks here: the launch plan (and so the wizard), `ftm estimate` and the Costs
tab, promotion, migration and the sunsets shown beside aliases. The dates themselves are
declared by each provider (`Provider.lifecycle()`, a `ProviderLifecycle`); this module
never knows a provider by name, it only reads what the provider declares.

The clock is injectable: every function takes ``today``; left out, it is `today()`, which
honours ``FTM_TODAY`` (YYYY-MM-DD) so a demo or a CLI test can fix the date.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import date
from functools import cache

from providers.base import Provider
from providers.types import BaseModelInfo, ProviderLifecycle

TODAY_ENV = "FTM_TODAY"
DAYS_PER_MONTH = 365.25 / 12
"""An average month: horizons are in months, retirements are days."""

ProviderRef = str | Provider | type[Provider]
"""A provider by registry name, instance or class."""


class ClockError(ValueError):
    """``FTM_TODAY`` is set but is not a date."""


def today() -> date:
    """Today's date, or ``FTM_TODAY`` when set (tests and demos fix the date with it)."""
    fixed = os.environ.get(TODAY_ENV, "").strip()
    if not fixed:
        return date.today()
    try:
        return date.fromisoformat(fixed)
    except ValueError:
        raise ClockError(
            f"{TODAY_ENV}={fixed!r} is not a date; use YYYY-MM-DD (e.g. 2026-12-01) or unset it"
        ) from None


def _on(day: date | None) -> date:
    """``day``, or today by the injectable clock (parameters named ``today`` shadow it)."""
    return day or today()


@cache
def _registered(name: str) -> type[Provider] | None:
    """The installed provider class called ``name`` (entry points do not change while ftm
    runs); only that one plugin is loaded. None when absent or broken: nothing declared."""
    from importlib.metadata import entry_points

    from providers.registry import ENTRY_POINT_GROUP

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            cls = ep.load()
        except Exception:  # a broken plugin declares nothing; the registry reports it
            return None
        if isinstance(cls, type) and issubclass(cls, Provider):
            return cls
    return None


def _provider_class(provider: ProviderRef) -> type[Provider] | None:
    if isinstance(provider, str):
        return _registered(provider)
    return provider if isinstance(provider, type) else type(provider)


def facts(provider: ProviderRef) -> ProviderLifecycle:
    """What ``provider`` declares; nothing announced for an unknown provider."""
    cls = _provider_class(provider)
    return cls.lifecycle() if cls is not None else ProviderLifecycle()


def _display_name(provider: ProviderRef) -> str:
    cls = _provider_class(provider)
    return getattr(cls, "display_name", None) or str(getattr(cls, "name", provider))


# -- job creation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    """The last day a provider accepts new fine-tuning jobs, seen from ``today``."""

    provider: str
    """Display name, for messages."""
    last_day: date
    today: date
    warn_days: int

    @property
    def days_left(self) -> int:
        return (self.last_day - self.today).days

    @property
    def passed(self) -> bool:
        return self.today > self.last_day

    @property
    def due(self) -> bool:
        """Passed, or close enough to warn before a launch."""
        return self.passed or self.days_left <= self.warn_days

    @property
    def message(self) -> str:
        if self.passed:
            return (
                f"{self.provider} stopped accepting new fine-tuning jobs after "
                f"{self.last_day.isoformat()}; a job created now will be refused"
            )
        return (
            f"{self.provider} accepts new fine-tuning jobs until "
            f"{self.last_day.isoformat()} ({self.days_left} days left)"
        )


def creation_cutoff(
    provider: ProviderRef, today: date | None = None, base_model: str | None = None
) -> Cutoff | None:
    """When ``provider`` stops accepting new jobs (on ``base_model``, for a provider that
    ends training per model); None when no end is announced."""
    declared = facts(provider)
    last_day = declared.training_cutoff(base_model) if base_model else declared.job_creation_cutoff
    if last_day is None:
        return None
    return Cutoff(
        _display_name(provider),
        last_day,
        _on(today),
        declared.warn_days,
    )


# -- serving --------------------------------------------------------------------------


@dataclass(frozen=True)
class Retirement:
    """When a model stops serving: the day its base model is retired."""

    model: str
    base_model: str
    retires: date
    today: date
    warn_days: int

    @property
    def days_left(self) -> int:
        return (self.retires - self.today).days

    @property
    def retired(self) -> bool:
        return self.today >= self.retires

    @property
    def due(self) -> bool:
        """Retired, or close enough to warn before a launch."""
        return self.retired or self.days_left <= self.warn_days

    @property
    def message(self) -> str:
        if self.retired:
            return (
                f"{self.base_model} was retired on {self.retires.isoformat()}: models tuned on "
                "it no longer serve and new jobs on it are refused"
            )
        return (
            f"{self.base_model} retires on {self.retires.isoformat()} ({self.days_left} days "
            "left): it and every model fine-tuned on it stop serving then"
        )


def retirement(
    provider: ProviderRef, model: str, base_model: str | None = None, today: date | None = None
) -> Retirement | None:
    """When ``model`` (a base or a model tuned on ``base_model``) stops serving on
    ``provider``; None when no retirement is announced."""
    declared = facts(provider)
    base = declared.base_model(base_model or model)
    retires = declared.retirements.get(base)
    if retires is None:
        return None
    return Retirement(model, base, retires, _on(today), declared.warn_days)


def listed_retirement(model: BaseModelInfo, today: date | None = None) -> Retirement | None:
    """The retirement of a base model as its provider listed it (`list_base_models`, whose
    dates come from the same declaration), for screens that hold the listing."""
    if not model.sunset:
        return None
    return Retirement(
        model.id,
        model.id,
        date.fromisoformat(model.sunset[:10]),
        _on(today),
        ProviderLifecycle().warn_days,
    )


def is_retired(provider: ProviderRef, model: str, today: date | None = None) -> bool:
    """Whether ``model`` no longer serves (and so no job can be created on it)."""
    found = retirement(provider, model, today=today)
    return found is not None and found.retired


def creation_warnings(
    provider: ProviderRef, base_model: str, today: date | None = None
) -> list[str]:
    """Why creating a job on ``base_model`` now may be refused or short-lived: the
    provider's cutoff and the base model's retirement, when due. Shown before a launch."""
    warnings = []
    cutoff = creation_cutoff(provider, today, base_model)
    if cutoff is not None and cutoff.due:
        warnings.append(cutoff.message)
    retires = retirement(provider, base_model, today=today)
    if retires is not None and retires.due:
        warnings.append(retires.message)
    return warnings


# -- horizons (costs) ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServingWindow:
    """How much of a cost horizon an option can serve."""

    serves_until: date | None
    """None: no retirement announced."""
    horizon_months: float
    months_served: float
    """Months of the horizon it serves (the whole horizon, or until it stops)."""
    stops_at_month: int | None
    """The month of the horizon (1-based) in which it stops serving; 0 when it already
    has; None when it serves the whole horizon."""

    @property
    def full(self) -> bool:
        return self.stops_at_month is None

    @property
    def note(self) -> str | None:
        """One line for a cost table or a launch preview; None when it serves throughout."""
        if self.full or self.serves_until is None:
            return None
        if self.stops_at_month == 0:
            return f"stopped serving on {self.serves_until.isoformat()}: nothing left to price"
        return (
            f"stops at month {self.stops_at_month} of {self.horizon_months:g} (serves until "
            f"{self.serves_until.isoformat()}): priced for {self.months_served:.1f} months"
        )

    def to_dict(self) -> dict:
        return {
            "serves_until": self.serves_until.isoformat() if self.serves_until else None,
            "months_served": round(self.months_served, 3),
            "stops_at_month": self.stops_at_month,
            "serves_whole_horizon": self.full,
        }


def serving_window(
    provider: ProviderRef, model: str, horizon_months: float, today: date | None = None
) -> ServingWindow:
    """The part of a ``horizon_months`` horizon, starting ``today``, that ``model`` serves."""
    found = retirement(provider, model, today=today)
    if found is None:
        return ServingWindow(None, horizon_months, horizon_months, None)
    months_left = max(0.0, found.days_left / DAYS_PER_MONTH)
    if months_left >= horizon_months:
        return ServingWindow(found.retires, horizon_months, horizon_months, None)
    return ServingWindow(found.retires, horizon_months, months_left, math.ceil(months_left))
