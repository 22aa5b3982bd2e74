"""Sunsets of promoted models: when a promoted model stops serving (its base is retired)
and when its provider stops taking new fine-tuning jobs. Every date comes from the one
lifecycle service (`app.lifecycle`), which asks the provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app import lifecycle


@dataclass(frozen=True)
class Sunset:
    model: str
    base_model: str
    retires: date
    days_left: int

    @property
    def retired(self) -> bool:
        return self.days_left <= 0

    @property
    def message(self) -> str:
        if self.retired:
            return f"{self.base_model} retired on {self.retires.isoformat()}: {self.model} no longer serves"
        return (
            f"{self.base_model} retires on {self.retires.isoformat()} ({self.days_left} days "
            f"left): {self.model} stops serving then; migrate with `ftm migrate`"
        )


def sunset_of(
    provider: str, model: str, base_model: str | None = None, today: date | None = None
) -> Sunset | None:
    """The retirement of a promoted model's base, or None when none is announced."""
    found = lifecycle.retirement(provider, model, base_model, today)
    if found is None:
        return None
    return Sunset(model, found.base_model, found.retires, found.days_left)


def job_creation_cutoff(provider: str, today: date | None = None) -> lifecycle.Cutoff | None:
    """When ``provider`` stops accepting new fine-tuning jobs; None when not announced."""
    return lifecycle.creation_cutoff(provider, today)
