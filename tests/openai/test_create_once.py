"""`OpenAIProvider.create` makes at most one job whatever happens to its requests.

The real SDK over real HTTP to the emulator, with faults injected on ``jobs.create``.
OpenAI takes no idempotency key, so what ftm may do after a failed create depends on
whether the request can still take effect."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from app.sandbox.faults import FaultPlan
from app.sandbox.server import SandboxServer
from providers.errors import ProviderError
from providers.openai import OpenAIProvider
from providers.openai.config import OpenAIConfig
from providers.types import JobSpec
from tests.jobs.conftest import MODEL, chat_example


@pytest.fixture
def server():
    with SandboxServer(port=0, seconds_per_step=0.01, seed=1) as s:
        yield s


def _provider(base_url: str, **config) -> OpenAIProvider:
    return OpenAIProvider(OpenAIConfig(sandbox=True, sandbox_url=base_url, **config))


def _prepared(provider: OpenAIProvider, tmp_path) -> JobSpec:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(chat_example(i)) + "\n" for i in range(12)))
    return provider.prepare(
        JobSpec(name="once", base_model=MODEL, train_path=str(train), ftm_job_uid=uuid.uuid4().hex)
    )


def _jobs_for(server, uid: str) -> list:
    return [j for j in server.state.jobs.values() if j.metadata.get("ftm_job_id") == uid]


def test_a_lost_answer_is_found_by_lookup_not_created_again(server, tmp_path):
    provider = _provider(server.base_url)
    spec = _prepared(provider, tmp_path)
    server.faults = FaultPlan().next(1, "drop_after", "jobs.create")
    job = provider.create(spec)
    assert [j.id for j in _jobs_for(server, spec.ftm_job_uid)] == [job.remote_id]


def test_an_answered_server_error_is_followed_by_one_new_create(server, tmp_path):
    provider = _provider(server.base_url)
    spec = _prepared(provider, tmp_path)
    server.faults = FaultPlan().next(2, "server_error", "jobs.create")
    job = provider.create(spec)
    assert server.faults.total_injected() == 2
    assert [j.id for j in _jobs_for(server, spec.ftm_job_uid)] == [job.remote_id]


def test_a_create_still_in_flight_is_never_sent_again(server, tmp_path):
    """The request outlives the client's timeout and every lookup of this launch: ftm
    must not send a second create (that would be a second billed job); it reports the
    outcome as unknown, and the one job appears when the slow request lands."""
    provider = _provider(server.base_url, timeout_s=0.3, create_attempts=3)
    spec = _prepared(provider, tmp_path)
    server.faults = FaultPlan().next(1, "slow", "jobs.create", delay_s=8.0)
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.create(spec)
    assert info.value.code == "create_unconfirmed"
    assert time.monotonic() - started < 8.0  # it gave up before the request landed
    assert _jobs_for(server, spec.ftm_job_uid) == []
    deadline = time.monotonic() + 15
    while not _jobs_for(server, spec.ftm_job_uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # room for a (wrong) second create to land too
    assert len(_jobs_for(server, spec.ftm_job_uid)) == 1
    assert provider.find_by_uid(spec.ftm_job_uid) is not None


def test_a_create_that_never_left_says_so_and_is_not_left_unconfirmed(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connecting is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SandboxServer(port=0, seconds_per_step=0.01) as server:
        spec = _prepared(_provider(server.base_url), tmp_path)
    provider = _provider(f"http://127.0.0.1:{port}/v1", create_attempts=2)
    provider._sleep = lambda s: None
    with pytest.raises(ProviderError) as info:
        provider.create(spec)
    assert info.value.code == "not_sent" and not info.value.retryable
    assert "nothing was sent" in info.value.message and "No job was created" in info.value.message
