"""The local backend's settings model (cheap to import: ftm's settings load it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class LocalSettings(BaseModel):
    """The local PEFT backend's settings: ``[providers.local]`` (or the older ``[local]``
    table) of ftm's config."""

    jobs_dir: Path | None = None
    """Where job directories go. Unset: ``<home>/jobs``."""
    python: str | None = None
    """The Python interpreter that runs training workers. Unset: the one running ftm."""
