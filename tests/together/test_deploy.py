"""A Together fine-tune answers only from a dedicated endpoint: the provider creates one
on first use (once), waits for it to start and chats through its name. Real HTTP, the real
``together`` SDK, the emulator WITHOUT ``serve_fine_tunes`` (a fine-tune with no STARTED
endpoint is refused, as on the service); the provider's sleep advances the frozen clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox.faults import FaultPlan
from app.sandbox.together.server import TogetherSandboxServer
from providers.errors import ProviderError
from providers.together import TogetherProvider
from providers.types import ChatMessage
from tests.sandbox.conftest import sentiment_rows
from tests.together.conftest import STEP_S, provider_for, spec_for

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

PROMPT, EXPECTED = (m["content"] for m in sentiment_rows()[1]["messages"][-2:])


def trained(provider: TogetherProvider, server: TogetherSandboxServer, train_file: Path) -> str:
    remote_id = provider.create(provider.prepare(spec_for(train_file))).remote_id
    server.advance(1000 * STEP_S)
    model = provider.refresh(remote_id).job.fine_tuned_model
    assert model
    return model


def clocked(server: TogetherSandboxServer, **config) -> TogetherProvider:
    """The provider whose waits advance the emulator's clock by as long."""
    return provider_for(server, sleep=server.advance, **config)


def ask(provider: TogetherProvider, model: str) -> str:
    return provider.complete(model, [ChatMessage("user", PROMPT)]).text


def test_first_complete_deploys_once_and_the_fine_tune_answers_through_it(server, train_file):
    provider = clocked(server)
    model = trained(provider, server, train_file)
    assert provider.deployment_for(model) is None  # nothing deployed yet
    assert EXPECTED == "negative"

    assert ask(provider, model) == EXPECTED
    (endpoint,) = server.state.endpoints.values()
    assert (endpoint.model, endpoint.hardware) == (model, "1x_nvidia_h100_80gb_sxm")
    assert (endpoint.min_replicas, endpoint.max_replicas) == (1, 1)
    assert provider.deployment_for(model) == endpoint.name
    # a base model still answers serverless: no endpoint for it
    assert provider.deployment_for("meta-llama/Llama-3.2-1B-Instruct") is None

    # reused, not created again: not even read (every endpoint route fails meanwhile)
    server.faults = FaultPlan().next(100, "server_error", "endpoints.*")
    assert ask(provider, model) == EXPECTED
    assert server.faults.total_injected() == 0
    server.faults = None
    assert len(server.state.endpoints) == 1
    provider.close()

    # another process finds the running endpoint instead of paying for a second one
    fresh = clocked(server)
    assert fresh.deployment_for(model) == endpoint.name
    assert ask(fresh, model) == EXPECTED
    assert len(server.state.endpoints) == 1
    fresh.close()


def test_deploy_waits_until_started(server, train_file):
    provider = clocked(server)
    model = trained(provider, server, train_file)
    requested = provider.deploy(model, wait=False)
    assert requested.state == "PENDING" and not requested.ready
    ready = provider.deploy(model)
    assert ready.ready and ready.name == requested.name
    assert len(server.state.endpoints) == 1
    provider.close()


def test_a_lost_answer_on_the_endpoint_create_makes_no_second_endpoint(server, train_file):
    provider = clocked(server)
    model = trained(provider, server, train_file)
    server.faults = FaultPlan().next(1, "drop_after", "endpoints.create")
    assert ask(provider, model) == EXPECTED
    assert server.faults.total_injected("drop_after") == 1
    assert len(server.state.endpoints) == 1
    provider.close()


def test_a_refused_deployment_is_one_line_naming_together_and_what_to_do(server, train_file):
    provider = clocked(server, endpoint_hardware="1x_abacus")
    model = trained(provider, server, train_file)
    with pytest.raises(ProviderError) as caught:
        ask(provider, model)
    message = caught.value.message
    assert "\n" not in message and "Together AI" in message
    assert "endpoint_hardware" in message and "1x_abacus" in message
    assert caught.value.code == "deployment_refused"
    assert not server.state.endpoints
    provider.close()


def test_a_stopped_endpoint_is_started_again_not_replaced(server, train_file):
    provider = clocked(server)
    model = trained(provider, server, train_file)
    first = provider.deploy(model)
    (endpoint,) = server.state.endpoints.values()
    server.state.update_endpoint(endpoint.id, {"state": "STOPPED"})
    provider.close()

    fresh = clocked(server)
    assert ask(fresh, model) == EXPECTED
    assert (
        list(server.state.endpoints) == [endpoint.id] and fresh.deployment_for(model) == first.name
    )
    fresh.close()
