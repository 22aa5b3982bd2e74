"""Errors of the cost estimator: each says what was wrong and what the user can do."""

from __future__ import annotations


class CostError(ValueError):
    """An estimate that cannot be made from the given inputs."""


class UnknownModel(CostError):
    """A model that is neither in the price catalog, the known-model table nor a local
    directory with a config.json."""


class UnknownGPU(CostError):
    """A hardware name the price catalog does not list."""


class CatalogError(CostError):
    """A price catalog (shipped or the user's file) that cannot be read."""


def known_list(names: list[str] | set[str], limit: int = 40) -> str:
    """A comma-separated, sorted list for error messages."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:limit])
    return shown + (f", ... ({len(ordered) - limit} more)" if len(ordered) > limit else "")
