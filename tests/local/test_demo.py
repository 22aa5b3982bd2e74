"""`ftm demo` trains a real local job end to end and prints its progress."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli.main import cli

pytestmark = pytest.mark.slow


def test_demo_builds_everything_trains_and_compares(ftm_home):
    result = CliRunner().invoke(cli, ["demo", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "building a tiny Llama-architecture model" in out
    assert "dataset demo-labelling: 120 train / 30 validation" in out
    assert "step 30/30" in out  # live progress reached the end
    assert "done: adapter in" in out
    assert "base model: exact match 0%" in out
    assert "fine-tuned: exact match" in out
    assert (ftm_home / "models" / "tiny-demo" / "config.json").is_file()
    # what the libraries print while building and loading models went to the demo's log
    for noise in ("Loading weights", "Writing model shards", "FutureWarning", "it/s]"):
        assert noise not in out, noise
    logs = list((ftm_home / "logs").glob("demo-*.log"))
    assert len(logs) == 1 and f"library messages: {logs[0]}" in out
    assert "Loading weights" in logs[0].read_text()
