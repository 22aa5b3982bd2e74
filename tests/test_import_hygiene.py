"""providers/ and db/ never import textual or app/; the CLI starts without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "module",
    [
        "providers.base",
        "providers.registry",
        "providers.types",
        "db.models",
        "db.repository",
        "db.migrate",
    ],
)
def test_lower_layers_do_not_import_textual_or_app(module):
    loaded = _modules_after(f"import {module}")
    assert "textual" not in loaded
    assert not any(m == "app" or m.startswith("app.") for m in loaded)


def test_cli_and_tui_start_without_the_training_stack():
    loaded = _modules_after("import app.cli.main, app.tui.app")
    heavy = {"torch", "transformers", "peft", "trl", "bitsandbytes", "datasets"}
    assert not heavy & loaded
