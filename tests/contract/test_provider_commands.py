"""Commands providers add (`Provider.cli_commands`) are offered by ``ftm``, and listing
them for ``ftm --help`` imports no provider once their cache is warm; a newly installed
provider's command shows up at once (the cache follows the installed entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.cli import provider_commands
from providers import registry
from tests.conftest import REPO_ROOT

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

PROBE = textwrap.dedent("""
    import sys
    from click.testing import CliRunner
    from app.cli.main import cli

    out = CliRunner().invoke(cli, ["--help"]).output
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    print("listed:", ",".join(listed))
    print("provider modules:", ",".join(sorted(
        m for m in sys.modules if m.startswith(("providers.local", "providers.openai", "ftm_"))
    )))
""")

PLUGIN = textwrap.dedent('''
    import click
    from providers.base import Capabilities, Provider

    @click.command("hello")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from the plugin")

    class Greeter(Provider):
        name = "greeter"
        display_name = "Greeter"
        capabilities = Capabilities()

        @classmethod
        def cli_commands(cls):
            return ("ftm_greeter_plugin:hello",)

        def prepare(self, spec): return spec
        def create(self, spec): raise NotImplementedError
        def refresh(self, remote_id, events_cursor=None): raise NotImplementedError
        def cancel(self, remote_id): raise NotImplementedError
        def list_base_models(self): return []
        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            raise NotImplementedError
''')


def _run(code_or_args: list[str], site: Path | None = None) -> str:
    path = [str(site)] if site else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO_ROOT)])}
    done = subprocess.run(
        [sys.executable, *code_or_args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "ftm_greeter_plugin").mkdir(parents=True)
    (site / "ftm_greeter_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_greeter_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ftm-greeter-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[ftm.providers]\ngreeter = ftm_greeter_plugin:Greeter\n"
    )
    return site


def test_the_entry_point_group_is_the_registrys():
    assert provider_commands.ENTRY_POINT_GROUP == registry.ENTRY_POINT_GROUP


def test_help_lists_provider_commands_without_importing_providers_once_warm():
    cold = _run(["-c", PROBE])
    assert "local" in cold.split("listed:")[1].split()[0].split(",")
    warm = _run(["-c", PROBE])
    assert "local" in warm.split("listed:")[1].split()[0].split(",")
    assert warm.split("provider modules:")[1].strip() == "", warm


def test_a_newly_installed_providers_command_is_listed_and_runs(tmp_path):
    _run(["-c", PROBE])  # the cache warmed without the plugin
    site = _site(tmp_path)
    listed = _run(["-c", PROBE], site).split("listed:")[1].split()[0].split(",")
    assert "hello" in listed and "local" in listed
    assert _run(["-m", "app", "hello"], site).strip() == "hello from the plugin"
    # Uninstalled: gone from the list, and running it is click's usual unknown command.
    assert "hello" not in _run(["-c", PROBE]).split("listed:")[1].split()[0].split(",")
