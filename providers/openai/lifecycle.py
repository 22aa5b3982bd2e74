"""The OpenAI fine-tuning service's lifecycle and base models, read from lifecycle.toml.

Dates are data, not code: the file beside this module is their single source. The
provider declares them through `OpenAIProvider.lifecycle()` (a `Lifecycle`, which is a
`ProviderLifecycle`); ``app.lifecycle`` turns them into every answer ftm gives, and the
sandbox emulates the same staged wind-down from them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from providers.types import BaseModelInfo, ProviderLifecycle

LIFECYCLE_FILE = Path(__file__).with_name("lifecycle.toml")


@dataclass(frozen=True)
class Lifecycle(ProviderLifecycle):
    """OpenAI's declared lifecycle: the generic facts plus the stages of the wind-down."""

    announced: date | None = None
    """Organizations that had never fine-tuned lost job creation on this day."""
    inactive_cutoff: date | None = None
    """Organizations without fine-tuned inference in the `inactive_window_days` before
    this day lost job creation on it."""
    inactive_window_days: int = 60
    models: tuple[BaseModelInfo, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Short name -> dated snapshot (gpt-4o-mini -> gpt-4o-mini-2024-07-18)."""

    def model(self, model_id: str) -> BaseModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)

    def base_model(self, model: str) -> str:
        """``ft:gpt-4o-mini-2024-07-18:org:suffix:id`` -> its base; a short name -> its
        snapshot. A fine-tuned model serves until its base is retired."""
        base = model.split(":")[1] if model.startswith("ft:") else model
        return self.aliases.get(base, base)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@cache
def load_lifecycle(path: Path = LIFECYCLE_FILE) -> Lifecycle:
    """Parse the lifecycle file (cached)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    service = data["service"]
    raw_models = data.get("models", [])
    models = tuple(
        BaseModelInfo(
            id=m["id"],
            methods=tuple(m.get("methods", ["supervised"])),
            sunset=m.get("retires"),
            context_limit=m.get("context_limit"),
            notes=m.get("notes"),
        )
        for m in raw_models
    )
    return Lifecycle(
        job_creation_cutoff=date.fromisoformat(service["job_creation_cutoff"]),
        retirements={m.id: date.fromisoformat(m.sunset) for m in models if m.sunset},
        warn_days=int(service.get("warn_days", 60)),
        source=service.get("source", ""),
        announced=_day(service.get("announced")),
        inactive_cutoff=_day(service.get("inactive_cutoff")),
        inactive_window_days=int(service.get("inactive_window_days", 60)),
        models=models,
        aliases={a: m["id"] for m in raw_models for a in m.get("aliases", [])},
    )
