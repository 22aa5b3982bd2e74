"""One Together emulator per module (frozen clock: it moves only when a test advances it),
fine-tunes trained on it, and the Together provider pointed at it over real HTTP with the
real ``together`` SDK, every response checked against Together's vendored spec."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.sandbox.together.server import TogetherSandboxServer
from providers.together import TogetherProvider
from providers.together.config import TogetherConfig
from tests.sandbox.conftest import START, jsonl, sentiment_rows
from tests.sandbox.test_together_emulator import TogetherSpecRecorder, make_client
from tests.together.conftest import STEP_S, spec_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TogetherSandboxServer]:
    data = tmp_path_factory.mktemp("together")
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, start=START, frozen=True, seed=7, data_dir=data
    ) as running:
        yield running


@pytest.fixture
def recorder() -> Iterator[TogetherSpecRecorder]:
    spec = TogetherSpecRecorder()
    yield spec
    assert not spec.failures, "responses that break the spec:\n" + "\n".join(spec.failures)


def clocked_provider(
    server: TogetherSandboxServer, recorder: TogetherSpecRecorder | None = None
) -> TogetherProvider:
    """The provider on the emulator; its waits advance the emulator's clock by as long
    (so `deploy(wait=True)` sees the endpoint start without real time passing)."""
    return TogetherProvider(
        TogetherConfig(sandbox=True, sandbox_url=server.base_url, timeout_s=5.0),
        client=make_client(server, recorder),
        sleep=server.advance,
    )


def sandbox_clock(server: TogetherSandboxServer):
    """ftm's clock on the emulator's: the times ftm records are the emulator's times."""
    return lambda: datetime.fromtimestamp(server.clock.now(), UTC)


def fine_tune(server: TogetherSandboxServer, tmp_path: Path) -> str:
    """A fresh fine-tune on the emulator (its own uid: its own endpoint)."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(sentiment_rows()))
    provider = clocked_provider(server)
    try:
        remote_id = provider.create(
            provider.prepare(spec_for(path, uid=uuid.uuid4().hex))
        ).remote_id
        server.advance(1000 * STEP_S)
        model = provider.refresh(remote_id).job.fine_tuned_model
    finally:
        provider.close()
    assert model
    return model


def point_ftm_at(server: TogetherSandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """ftm's own settings (what the CLI builds its provider from) on the emulator."""
    from app import database

    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
    database.reset()
