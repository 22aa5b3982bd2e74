"""Expected failures end with a one-line message and a non-zero exit, never a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """Something the user can fix: says what was wrong, where, and what to do."""

    def show(self, file=None) -> None:  # noqa: D102 - click's signature
        click.secho(f"error: {self.format_message()}", err=True, fg="red")


class BrokenEnvironment(UserError):
    """ftm cannot run here (config, home directory, database): exit 2, like click's own
    usage errors, so scripts can tell "fix your set-up" from a command that failed."""

    exit_code = 2
