"""What ftm raises when it cannot run in this environment (settings, home, database).

A module of its own, free of heavy imports, so the CLI's entry point can catch it
without loading the settings machinery for `ftm --help`.
"""

from __future__ import annotations


class EnvironmentProblem(Exception):
    """ftm cannot run in this environment (settings, home directory, database).

    The message is one line: what is wrong, where, and what to do. The CLI prints it and
    exits 2 (`app.cli.errors.BrokenEnvironment`), before any command or the TUI runs.
    """
