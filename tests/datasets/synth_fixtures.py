"""Shared by the `ftm data synth` tests: the OpenAI sandbox emulator as the teacher, and
a routing dataset of support tickets as the source."""

from __future__ import annotations

import pytest

from app import database
from app.datasets.store import add_dataset
from app.sandbox.server import SandboxServer
from tests.evaluation.sandbox_fixtures import ticket_rows, write_jsonl

TEACHER = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def sandbox(monkeypatch):
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


def tickets(tmp_path, n: int = 40):
    dataset, _ = add_dataset(
        write_jsonl(tmp_path / "tickets.jsonl", ticket_rows(n)),
        name="tickets",
        val_fraction=0.25,
        seed=1,
    )
    return dataset
