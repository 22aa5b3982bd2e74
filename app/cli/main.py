"""`ftm`: with no command, opens the TUI; otherwise runs a CLI command.

Each area's commands live in their own module and are attached here; the modules import
their heavy dependencies lazily so `ftm --help` stays fast.
"""

from __future__ import annotations

import importlib

import click

# (module, attribute): each attribute is a click command or group.
COMMAND_MODULES: list[tuple[str, str]] = [
    ("app.cli.data", "data"),
    ("app.cli.jobs", "launch"),
    ("app.cli.jobs", "jobs"),
    ("app.cli.jobs", "watch"),
    ("app.cli.costs", "estimate"),
    ("app.cli.costs", "prices"),
    ("app.cli.evaluate", "eval_command"),
    ("app.cli.evaluate", "compare_command"),
    ("app.cli.models", "models"),
    ("app.cli.models", "promote"),
    ("app.cli.models", "gates"),
    ("app.cli.models", "migrate"),
    ("app.cli.sandbox", "sandbox"),
    ("app.cli.demo", "demo"),
    ("app.cli.jobs_local", "local"),
]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ftm, the fine-tuning manager: bring data, price the options, launch, watch,
    evaluate and promote fine-tuned models on OpenAI or locally.

    Run with no command to open the terminal app.
    """
    from app.lifecycle import ClockError, today

    try:
        today()  # a bad FTM_TODAY is one clear line here, not a traceback mid-command
    except ClockError as exc:
        from app.cli.errors import UserError

        raise UserError(str(exc)) from None
    if ctx.invoked_subcommand is None:
        from app.tui.app import run_tui

        run_tui()


for _module, _attr in COMMAND_MODULES:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main() -> None:
    cli(prog_name="ftm")
