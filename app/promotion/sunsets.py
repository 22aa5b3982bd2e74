"""Sunset dates: when a promoted hosted model stops working (its base is retired) and
when the service stops taking new fine-tuning jobs. Dates come from the OpenAI provider's
lifecycle file (providers/openai/lifecycle.toml), the single source of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.evaluation.pricing import base_of, canonical_model


@dataclass(frozen=True)
class Sunset:
    model: str
    base_model: str
    retires: date
    days_left: int

    @property
    def message(self) -> str:
        if self.days_left < 0:
            return f"{self.base_model} retired on {self.retires.isoformat()}: {self.model} no longer serves"
        return (
            f"{self.base_model} retires on {self.retires.isoformat()} ({self.days_left} days "
            f"left): {self.model} stops serving then; migrate with `ftm migrate`"
        )


def _lifecycle():
    from providers.openai.lifecycle import load_lifecycle

    return load_lifecycle()


def sunset_of(
    provider: str, model: str, base_model: str | None = None, today: date | None = None
) -> Sunset | None:
    """The retirement of a hosted model's base, or None when none is announced."""
    if provider != "openai":
        return None
    today = today or date.today()
    base = canonical_model(base_model or base_of(model))
    info = _lifecycle().model(base)
    if info is None or not info.sunset:
        return None
    retires = date.fromisoformat(info.sunset)
    return Sunset(model, base, retires, (retires - today).days)


def job_creation_cutoff(today: date | None = None) -> tuple[date, int]:
    """The last day OpenAI accepts new fine-tuning jobs, and the days left until then."""
    cutoff = _lifecycle().job_creation_cutoff
    return cutoff, (cutoff - (today or date.today())).days
