"""The ``ftm`` commands installed providers add (`Provider.cli_commands`).

Running one imports its provider; listing them for ``ftm --help`` must not (importing
every provider, SDKs included, made ``ftm --help`` several times slower). So the names and
one-line helps found at the last real load are kept in a small cache file, valid while
the installed ``ftm.providers`` entry points are the same (names, targets, distribution
versions); a changed set loads the providers once and rewrites it.
"""

from __future__ import annotations

import importlib
import json
import os
from importlib.metadata import entry_points
from pathlib import Path

import click

# The group's one definition is providers.registry.ENTRY_POINT_GROUP; importing it here
# would import the provider contract (pydantic) on every `ftm --help`. A test keeps the two
# equal.
ENTRY_POINT_GROUP = "ftm.providers"


def provider_commands() -> dict[str, click.Command]:
    """The click commands installed providers declare, by name, loaded for real (the
    cache is refreshed on the way). A name ftm already uses is the caller's to refuse; a
    command that fails to import is left out, so a broken plugin never stops ftm."""
    from providers.registry import discover

    found: dict[str, click.Command] = {}
    for cls in discover().classes.values():
        for path in cls.cli_commands():
            command = _load_command(path)
            if command is not None and command.name:
                found.setdefault(command.name, command)
    _write_cache(found)
    return found


def listed_provider_commands() -> dict[str, str]:
    """Name -> one-line help of every provider command, for the command list: from the
    cache when the installed providers are unchanged, else from a real load."""
    cached = _read_cache()
    if cached is not None:
        return cached
    return {name: _short_help(command) for name, command in provider_commands().items()}


def _load_command(path: str) -> click.Command | None:
    module, _, attr = path.partition(":")
    try:
        command = getattr(importlib.import_module(module), attr)
    except Exception:  # a plugin's command may fail in any way; ftm must go on
        return None
    return command if isinstance(command, click.Command) else None


def _short_help(command: click.Command) -> str:
    return command.short_help or (command.help or "").strip().split("\n\n")[0]


def cache_file() -> Path:
    """``$FTM_HOME/cache/`` (tests and relocated installs), else the user cache dir."""
    if os.environ.get("FTM_HOME"):
        base = Path(os.environ["FTM_HOME"]).expanduser() / "cache"
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("ftm"))
    return base / "provider-commands.json"


def _fingerprint() -> list[str]:
    """What the cache is valid for: every installed provider entry point."""
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist is not None else ""
        out.append(f"{ep.name}={ep.value} ({dist})")
    return sorted(out)


def _read_cache() -> dict[str, str] | None:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != _fingerprint():
        return None
    commands = data.get("commands")
    return commands if isinstance(commands, dict) else None


def _write_cache(commands: dict[str, click.Command]) -> None:
    payload = {
        "fingerprint": _fingerprint(),
        "commands": {name: _short_help(command) for name, command in commands.items()},
    }
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the next `ftm --help` a real load
