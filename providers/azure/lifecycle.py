"""Azure OpenAI's fine-tuning lifecycle and base models, from lifecycle.toml.

Azure is not bound by OpenAI's job-creation cutoff: each base model has its own last
training day and its own last serving day. The provider declares them through
`AzureOpenAIProvider.lifecycle()`; ``app.lifecycle`` words every answer from that.
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
class AzureLifecycle(ProviderLifecycle):
    """The generic facts (the service's last training day, serving retirements) plus each
    base model's own last training day."""

    training_until: Mapping[str, date] = field(default_factory=dict)
    """Base model id -> the last day a job on it is accepted."""
    models: tuple[BaseModelInfo, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Short name -> dated snapshot (gpt-4o-mini -> gpt-4o-mini-2024-07-18)."""

    def training_cutoff(self, base_model: str) -> date | None:
        """Azure ends training per base model."""
        return self.training_until.get(self.base_model(base_model), self.job_creation_cutoff)

    def base_model(self, model: str) -> str:
        """The base model ``model`` follows: ``ft:BASE:org:suffix:id`` (as the sandbox
        names them), ``BASE.ft-JOBID`` (as Azure names them), a short name or a snapshot."""
        if model.startswith("ft:"):
            model = model.split(":")[1]
        elif ".ft-" in model:
            model = model.split(".ft-")[0]
        return self.aliases.get(model, model)


@cache
def load_lifecycle(path: Path = LIFECYCLE_FILE) -> AzureLifecycle:
    """Parse the lifecycle file (cached)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    service, raw_models = data["service"], data.get("models", [])
    models = tuple(
        BaseModelInfo(
            id=m["id"],
            methods=tuple(m.get("methods", ["supervised"])),
            sunset=m.get("retires"),
            context_limit=m.get("context_limit"),
            notes=f"fine-tuning accepted until {m['training_until']}",
        )
        for m in raw_models
    )
    return AzureLifecycle(
        job_creation_cutoff=date.fromisoformat(service["job_creation_cutoff"]),
        retirements={m["id"]: date.fromisoformat(m["retires"]) for m in raw_models},
        warn_days=int(service.get("warn_days", 60)),
        source=service.get("source", ""),
        training_until={m["id"]: date.fromisoformat(m["training_until"]) for m in raw_models},
        models=models,
        aliases={a: m["id"] for m in raw_models for a in m.get("aliases", [])},
    )
