"""The OpenAI provider stays in its layer: no app/, no textual, no SDK at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_provider_imports_neither_app_nor_textual_nor_the_sdk_eagerly():
    code = (
        "import providers.openai, providers.openai.lifecycle, providers.openai.uploads\n"
        "import sys; print('\\n'.join(sys.modules))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "textual" not in loaded
    assert not any(m == "app" or m.startswith("app.") for m in loaded)
    assert "openai" not in loaded  # the SDK loads when the first client is built
