"""The OpenAI fine-tuning service's lifecycle and base models, read from lifecycle.toml.

Dates are data, not code: the file beside this module is the single source, and app/
reads it through `load_lifecycle()` too.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from providers.types import BaseModelInfo

LIFECYCLE_FILE = Path(__file__).with_name("lifecycle.toml")


@dataclass(frozen=True)
class Lifecycle:
    job_creation_cutoff: date
    """No new jobs are accepted after this date."""
    warn_days: int
    source: str
    models: tuple[BaseModelInfo, ...]

    def model(self, model_id: str) -> BaseModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)


@cache
def load_lifecycle(path: Path = LIFECYCLE_FILE) -> Lifecycle:
    """Parse the lifecycle file (cached)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    service = data["service"]
    models = tuple(
        BaseModelInfo(
            id=m["id"],
            methods=tuple(m.get("methods", ["supervised"])),
            sunset=m.get("retires"),
            context_limit=m.get("context_limit"),
            notes=m.get("notes"),
        )
        for m in data.get("models", [])
    )
    return Lifecycle(
        job_creation_cutoff=date.fromisoformat(service["job_creation_cutoff"]),
        warn_days=int(service.get("warn_days", 60)),
        source=service.get("source", ""),
        models=models,
    )


def creation_warnings(base_model: str, today: date, lifecycle: Lifecycle | None = None) -> list[str]:
    """Why creating a job on ``base_model`` today may be refused or short-lived."""
    lc = lifecycle or load_lifecycle()
    warnings: list[str] = []
    cutoff = lc.job_creation_cutoff
    if today > cutoff:
        warnings.append(
            f"OpenAI stopped accepting new fine-tuning jobs after {cutoff.isoformat()}; "
            "the API will most likely refuse this job"
        )
    elif (cutoff - today).days <= lc.warn_days:
        warnings.append(
            f"OpenAI accepts new fine-tuning jobs only until {cutoff.isoformat()} "
            f"({(cutoff - today).days} days left)"
        )
    info = lc.model(base_model)
    if info is None:
        # Fine-tuned models (ft:...) can be the base of a new job; their base is in the name.
        base = base_model.split(":")[1] if base_model.startswith("ft:") else None
        info = lc.model(base) if base else None
    if info is not None and info.sunset:
        retires = date.fromisoformat(info.sunset)
        if today >= retires:
            warnings.append(f"{info.id} was retired on {info.sunset}")
        elif (retires - today).days <= lc.warn_days:
            warnings.append(
                f"{info.id} retires on {info.sunset} ({(retires - today).days} days left): "
                "a model fine-tuned on it stops serving then"
            )
    return warnings
