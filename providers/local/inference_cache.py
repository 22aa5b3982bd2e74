"""Models loaded for local inference, kept per process (no torch import here, so the
provider can clear the cache without loading the training stack)."""

from __future__ import annotations

from typing import Any

_models: dict[str, Any] = {}


def get(key: str) -> Any:
    return _models.get(key)


def put(key: str, value: Any) -> None:
    _models[key] = value


def clear() -> None:
    _models.clear()
