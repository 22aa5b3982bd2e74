"""Durations as people type and read them: ``30m``, ``2h``, ``45s``, ``1h30m`` in, and
``1 h 05 min`` out. The one parser of ``--idle-stop`` and the settings that take a
duration, and the one way idle times are shown (CLI, TUI, warnings)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class DurationError(ValueError):
    """Not a duration ftm reads."""


def parse_duration(text: str) -> int:
    """Seconds in ``text``: one or more NUMBER+UNIT parts (s, m, h, d), e.g. ``30m``,
    ``2h``, ``1h30m``, ``45s``; a bare number is seconds.

    Raises:
        DurationError: not of that form, or zero.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned.isdigit():
        seconds = float(cleaned)
    else:
        parts = _PART.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise DurationError(
                f"{text!r} is not a duration; write it like 30m, 2h, 45s or 1h30m "
                "(s, m, h, d: seconds, minutes, hours, days)"
            )
        seconds = sum(float(n) * UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise DurationError(f"{text!r} is no time at all; give a duration above zero, e.g. 30m")
    return round(seconds)


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``; ``-`` for no figure."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
