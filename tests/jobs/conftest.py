"""Fixtures for job tracking tests: the real emulator on a random loopback port, the
OpenAI provider pointed at it through the settings, and datasets on disk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app import database
from app.sandbox.server import SandboxServer
from db.engine import read_session, write_session
from db.models import Dataset, Job

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def sandbox():
    with SandboxServer(port=0, seconds_per_step=0.01, seed=7) as server:
        yield server


@pytest.fixture
def use_sandbox(sandbox, monkeypatch):
    """ftm's settings point the OpenAI provider at the emulator (``openai.sandbox``)."""
    monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
    monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", sandbox.base_url)
    database.reset()
    return sandbox


@pytest.fixture
def engine(use_sandbox):
    return database.get_engine()


def chat_example(i: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": f"What is item {i}?"},
            {"role": "assistant", "content": f"answer-{i}"},
        ]
    }


def preference_example(i: int) -> dict:
    return {
        "input": {"messages": [{"role": "user", "content": f"Say hi to {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"Hello {i}!"}],
        "non_preferred_output": [{"role": "assistant", "content": "no"}],
    }


def make_dataset(
    engine,
    root: Path,
    name: str = "toy",
    *,
    n_train: int = 20,
    n_val: int = 4,
    kind: str = "chat",
    lines: list[dict] | None = None,
) -> Dataset:
    """A dataset through the real intake (`app.datasets.store.add_dataset`); with ``lines``
    (data intake would refuse), a row written directly with those lines as train.jsonl."""
    make = preference_example if kind == "preference" else chat_example
    if lines is None:
        from app.datasets.store import add_dataset

        source = root / f"source-{name}.jsonl"
        rows = [make(i) for i in range(n_train + n_val)]
        source.write_text("".join(json.dumps(x) + "\n" for x in rows))
        dataset, _ = add_dataset(source, name=name, val_fraction=n_val / (n_train + n_val))
        return dataset
    data_dir = root / f"dataset-{name}"
    data_dir.mkdir(parents=True, exist_ok=True)
    train = lines if lines is not None else [make(i) for i in range(n_train)]
    val = [make(1000 + i) for i in range(n_val)]
    (data_dir / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in train))
    (data_dir / "validation.jsonl").write_text("".join(json.dumps(x) + "\n" for x in val))
    with write_session(engine) as session:
        ds = Dataset(
            name=name,
            content_hash=f"hash-{name}-{time.monotonic_ns()}",
            format="preference" if kind == "preference" else "chat",
            source_path=str(data_dir),
            n_examples=len(train) + n_val,
            n_train=len(train),
            n_validation=n_val,
            val_fraction=0.2,
            split_seed=0,
            verdict="ok",
            data_dir=str(data_dir),
        )
        session.add(ds)
    return ds


def job_row(engine, job_id: int) -> Job:
    with read_session(engine) as session:
        return session.get(Job, job_id)


def poll_until(
    poller, done: Callable[[], bool], *, timeout: float = 60.0, pause: float = 0.05
) -> list:
    """Run poll cycles until ``done()``; returns the cycle reports."""

    async def go():
        reports = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reports.append(await poller.run_once())
            if done():
                return reports
            await asyncio.sleep(pause)
        raise AssertionError(f"not done after {timeout} s; last report: {reports[-1]}")

    return asyncio.run(go())
