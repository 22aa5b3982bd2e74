"""What an alias can point at: a hosted model id, a local adapter or a merged model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.evaluation.pricing import base_of
from app.jobs.providers import capabilities_of

MODEL_KINDS = ("hosted", "adapter", "merged")


@dataclass(frozen=True)
class ModelTarget:
    provider: str
    model: str
    """An ``ft:`` id (hosted) or a directory (local adapter or merged model)."""
    model_kind: str
    base_model: str | None = None
    job_id: int | None = None


def _local(model: str) -> Path:
    """Where ``model`` would be on this machine: a storage reference (a local job's
    adapter) under the storage root, else the path it names."""
    from app.settings import get_settings

    return get_settings().file_store.where(Path(model).expanduser().as_posix())


def model_kind_of(provider: str, model: str) -> str:
    """hosted for a provider-side model id; adapter when the directory holds a PEFT adapter
    (adapter_config.json); merged for any other local model directory."""
    path = _local(model)
    if not capabilities_of(provider).runs_locally and not path.is_dir():
        return "hosted"
    return "adapter" if (path / "adapter_config.json").is_file() else "merged"


def reference_base(provider: str, model: str, base_model: str | None) -> str | None:
    """The base a model was trained from: given, or read from an ``ft:`` id, or (for a local
    adapter) from its adapter_config.json."""
    if base_model:
        return base_model
    if model.startswith("ft:"):
        return base_of(model)
    config = _local(model) / "adapter_config.json"
    if config.is_file():
        import json

        try:
            return json.loads(config.read_text()).get("base_model_name_or_path")
        except ValueError:
            return None
    return None
