"""The vendored API specs are in the repository, whole, with their source and licence:
a clone alone runs every spec check, and nothing in the repository reads outside it."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.conftest import REPO_ROOT, SPECS_DIR


def test_openai_spec_is_vendored_with_source_and_licence():
    spec = json.loads((SPECS_DIR / "openai" / "openapi.json").read_text())
    assert spec["info"]["license"]["name"] == "MIT"
    for path in ("/fine_tuning/jobs", "/files", "/models", "/chat/completions"):
        assert path in spec["paths"], path
    readme = (SPECS_DIR / "openai" / "README.md").read_text()
    assert "openai/openai-openapi" in readme
    assert "f85dbe223d40e1a31cba812ab2d755c7e98a92a3" in readme
    assert "MIT License" in readme and "Permission is hereby granted" in readme


def test_together_spec_is_vendored_with_source_and_licence():
    spec = yaml.safe_load((SPECS_DIR / "together" / "openapi.yaml").read_text())
    for path in ("/fine-tunes", "/files/upload", "/endpoints", "/chat/completions"):
        assert path in spec["paths"], path
    readme = (SPECS_DIR / "together" / "README.md").read_text()
    assert "togethercomputer/openapi" in readme
    assert "090263aa0fde006d9cd958bef52719958079bbc4" in readme
    assert "MIT License" in (SPECS_DIR / "together" / "LICENSE").read_text()


def test_nothing_in_the_repository_reads_or_cites_files_beside_it():
    """No code, test, docstring or product string names ../shared or the design notes
    kept outside the repository."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.toml", "*.md", "*.tcss"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = (
        "../shared",
        '"shared"',
        "design/",
        "OPENAI_API.md",
        "TOGETHER_API.md",
        "COST_MODEL.md",
        "ARCHITECTURE.md",
        "PRODUCT.md",
        "STYLE.md",
    )
    me = "tests/specs/test_vendored.py"
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        if name != me
        for number, line in enumerate((REPO_ROOT / name).read_text().splitlines(), 1)
        if any(mark in line for mark in outside)
    ]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)
