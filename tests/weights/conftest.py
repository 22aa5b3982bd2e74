"""Fixtures for hosted weights used on this machine: the Together emulator (serving real
weights from a store shared by the session) and the real SDK, every response checked
against Together's spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import together

from app.sandbox.together.server import TogetherSandboxServer
from tests.sandbox.conftest import START
from tests.sandbox.test_together_emulator import TogetherSpecRecorder, make_client
from tests.together_weights import together_weights_dir  # noqa: F401  (session fixture)


@pytest.fixture
def recorder() -> Iterator[TogetherSpecRecorder]:
    spec = TogetherSpecRecorder()
    yield spec
    assert not spec.failures, "responses that break the spec:\n" + "\n".join(spec.failures)


@pytest.fixture
def server(tmp_path: Path, together_weights_dir: Path) -> Iterator[TogetherSandboxServer]:  # noqa: F811
    with TogetherSandboxServer(
        seconds_per_step=1.0,
        start=START,
        frozen=True,
        seed=5,
        data_dir=tmp_path / "tg",
        weights_dir=together_weights_dir,
    ) as running:
        yield running


@pytest.fixture
def client(server, recorder: TogetherSpecRecorder) -> Iterator[together.Together]:
    sdk = make_client(server, recorder)
    yield sdk
    sdk.close()
