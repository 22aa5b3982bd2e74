"""Fixtures: the Together emulator on a loopback port and the Together provider pointed at
it over real HTTP with the real ``together`` SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.sandbox.together.server import TogetherSandboxServer
from providers.together import TogetherProvider
from providers.together.config import TogetherConfig
from providers.types import JobSpec
from tests.sandbox.conftest import START, jsonl, preference_rows, sentiment_rows

STEP_S = 1.0
SMALL = "meta-llama/Llama-3.2-1B-Instruct"
LARGE = "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"  # LoRA only


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TogetherSandboxServer]:
    """A frozen clock: nothing happens until the test advances it."""
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, start=START, frozen=True, seed=5, data_dir=tmp_path / "tg"
    ) as running:
        yield running


def provider_for(
    server: TogetherSandboxServer, sleep: Callable[[float], None] | None = None, **config
) -> TogetherProvider:
    """The provider on the emulator; by default its retries do not wait (the server's
    clock is frozen, and a test of backoff passes ``sleep=time.sleep``)."""
    config.setdefault("timeout_s", 5.0)
    return TogetherProvider(
        TogetherConfig(sandbox=True, sandbox_url=server.base_url, **config),
        sleep=sleep or (lambda s: None),
    )


@pytest.fixture
def provider(server) -> Iterator[TogetherProvider]:
    made = provider_for(server)
    yield made
    made.close()


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(sentiment_rows()))
    return path


@pytest.fixture
def dpo_file(tmp_path: Path) -> Path:
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(jsonl(preference_rows()))
    return path


def spec_for(path: Path, uid: str = "0123456789abcdef0123456789abcdef", **fields) -> JobSpec:
    fields.setdefault("base_model", SMALL)
    return JobSpec(name="t", train_path=str(path), ftm_job_uid=uid, **fields)
