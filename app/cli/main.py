"""`ftm`: with no command, opens the TUI; otherwise runs a CLI command.

Each area's commands live in their own module and are attached here; the modules import
their heavy dependencies lazily so `ftm --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from app.cli.errors import BrokenEnvironment
from app.cli.provider_commands import listed_provider_commands, provider_commands
from app.environment import EnvironmentProblem

# (module, attribute): each attribute is a click command or group.
COMMAND_MODULES: list[tuple[str, str]] = [
    ("app.cli.data", "data"),
    ("app.cli.jobs", "launch"),
    ("app.cli.jobs", "jobs"),
    ("app.cli.jobs", "watch"),
    ("app.cli.costs", "estimate"),
    ("app.cli.costs", "prices"),
    ("app.cli.costs", "costs"),
    ("app.cli.evaluate", "eval_command"),
    ("app.cli.evaluate", "compare_command"),
    ("app.cli.models", "models"),
    ("app.cli.models", "promote"),
    ("app.cli.models", "gates"),
    ("app.cli.models", "migrate"),
    ("app.cli.sandbox", "sandbox"),
    ("app.cli.demo", "demo"),
    ("app.cli.keys", "keys"),
    ("app.cli.deployments", "deploy_command"),
    ("app.cli.deployments", "deployments"),
    ("app.cli.serve", "serve"),
    ("app.cli.db", "db"),
]


HELP_OPTIONS = ["-h", "--help"]


class FtmGroup(click.Group):
    """The root command: a broken environment (`EnvironmentProblem`), met by any command
    or by the TUI's start, ends as its one-line message and exit 2, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Remembered for `cli`: asking for a command's help needs no working set-up.
        ctx.meta["ftm.help_asked"] = bool(set(HELP_OPTIONS) & set(args))
        return super().parse_args(ctx, args)

    # Commands providers add (`Provider.cli_commands`): looked up only when a name is not
    # one of ftm's own or the command list is shown, so a plain command loads no provider.

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *provider_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        return own if own is not None else provider_commands().get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``ftm --help``: ftm's own commands and, from the cache,
        the providers' (`listed_provider_commands`), without importing any provider."""
        own = {name: self.commands[name] for name in super().list_commands(ctx)}
        provided = {n: h for n, h in listed_provider_commands().items() if n not in own}
        names = sorted({*own, *provided})
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in own:
                if not own[name].hidden:
                    rows.append((name, own[name].get_short_help_str(limit)))
            else:
                rows.append(
                    (name, click.Command(name, short_help=provided[name]).get_short_help_str(limit))
                )
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EnvironmentProblem as exc:
            # One line, whatever a driver put in its reason.
            raise BrokenEnvironment(" ".join(str(exc).splitlines())) from None


@click.group(
    cls=FtmGroup, invoke_without_command=True, context_settings={"help_option_names": HELP_OPTIONS}
)
@click.version_option(package_name="ftm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ftm, the fine-tuning manager: bring data, price the options, launch, watch,
    evaluate and promote fine-tuned models on OpenAI or locally.

    Run with no command to open the terminal app.
    """
    # Settings and home are checked before any command runs; the database when first
    # opened (not every command needs one). `ftm CMD --help` works in a broken set-up.
    if not ctx.meta.get("ftm.help_asked"):
        from app.settings import ensure_home, get_settings  # pydantic: not for --help

        ensure_home(get_settings())
    from app.lifecycle import ClockError, today

    try:
        today()  # a bad FTM_TODAY is one clear line here, not a traceback mid-command
    except ClockError as exc:
        from app.cli.errors import UserError

        raise UserError(str(exc)) from None
    if ctx.invoked_subcommand is None:
        from app.database import get_engine
        from app.tui.app import run_tui

        get_engine()  # before the screen switches over: a broken DB is one line, not a crash
        run_tui()


for _module, _attr in COMMAND_MODULES:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main() -> None:
    cli(prog_name="ftm")
