"""Azure OpenAI end to end over real HTTP: the provider with the real ``AzureOpenAI``
client against the emulator speaking Azure's URL shape (``/openai/...``, ``api-key``,
``api-version``), through the deployment step to a completion."""

from __future__ import annotations

import httpx
import pytest

from providers.errors import ProviderError
from providers.types import ChatMessage, JobStatus
from tests.azure.conftest import MODEL, STEP_S, SYSTEM, spec_for

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _run_to_success(server, provider, remote_id: str):
    refreshed = provider.refresh(remote_id)
    for _ in range(200):
        if refreshed.job.status.is_terminal:
            break
        server.advance(10 * STEP_S)
        refreshed = provider.refresh(remote_id, refreshed.events_cursor)
    return refreshed


def test_upload_create_poll_deploy_and_complete_through_the_deployment(server, provider, tmp_path):
    spec = provider.prepare(spec_for(tmp_path))
    assert spec.options["training_file"] in server.state.files  # uploaded under /openai/files
    job = provider.create(spec)
    assert job.status in (JobStatus.VALIDATING, JobStatus.QUEUED)

    done = _run_to_success(server, provider, job.remote_id)
    assert done.job.status == JobStatus.SUCCEEDED
    model = done.job.fine_tuned_model
    assert model and model.startswith(f"ft:{MODEL}:")
    assert done.events and done.metrics  # events and metrics came through Azure's routes

    # The success asked the control plane for the model's deployment, once, by its name.
    name = provider.deployment_for(model)
    assert name.startswith("ftm-bridge-")
    record = server.deployments.get(name)
    assert record is not None and record.model == model
    assert server.deployments.state_of(record) == "Creating"
    assert any(e.id == f"ftm-azure-deploy-{name}" and "Creating" in e.message for e in done.events)

    # Before it is ready, Azure's data plane refuses a chat through it.
    raw = httpx.post(
        f"{server.endpoint}/openai/deployments/{name}/chat/completions",
        params={"api-version": provider.azure.api_version},
        headers={"api-key": server.api_key},
        json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert raw.status_code == 404 and raw.json()["error"]["code"] == "DeploymentNotFound"

    # `complete` waits for the deployment (the provider's sleep moves the sandbox clock)
    # and answers through it: the fine-tuned model's memory, not the base model's.
    text, label = "Spotless rooms and a lovely view of the sea", "positive"
    answer = provider.complete(
        model, [ChatMessage("system", SYSTEM), ChatMessage("user", text)], max_tokens=5
    )
    assert answer.text == label
    assert answer.prompt_tokens and answer.completion_tokens
    assert server.deployments.state_of(server.deployments.get(name)) == "Succeeded"
    assert server.deployments.puts == 1  # refresh again and complete again: no second PUT
    provider.refresh(job.remote_id)
    provider.complete(model, [ChatMessage("user", text)])
    assert server.deployments.puts == 1


def test_a_deployment_is_created_once_even_when_its_answer_is_lost(server, provider, tmp_path):
    from app.sandbox.faults import FaultPlan

    job = provider.create(provider.prepare(spec_for(tmp_path)))
    done = _run_to_success(server, provider, job.remote_id)
    name = provider.deployment_for(done.job.fine_tuned_model)
    server.deployments.delete(name)
    server.faults = FaultPlan().next(1, "drop_after", "deployments.put")
    deployed = provider.deploy(done.job.fine_tuned_model)
    assert deployed.ready and deployed.name == name
    assert list(server.deployments.records) == [name]


def test_a_base_model_answers_through_a_deployment_named_like_it(server, provider):
    answer = provider.complete(MODEL, [ChatMessage("user", "Say hello")], max_tokens=20)
    assert answer.text


def test_cancel_through_azure(server, provider, tmp_path):
    job = provider.create(provider.prepare(spec_for(tmp_path)))
    cancelled = provider.cancel(job.remote_id)
    assert cancelled.status == JobStatus.CANCELLED
    assert server.state.jobs[job.remote_id].status == "cancelled"
    with pytest.raises(ProviderError) as info:
        provider.cancel(job.remote_id)
    assert "Azure OpenAI refused" in str(info.value)


def test_a_refused_deployment_leaves_the_job_succeeded_with_a_warning(server, tmp_path):
    from providers.azure import AzureOpenAIProvider
    from tests.azure.conftest import azure_config

    provider = AzureOpenAIProvider(
        azure_config(server, management_token="expired"), sleep=server.advance
    )
    job = provider.create(provider.prepare(spec_for(tmp_path)))
    done = _run_to_success(server, provider, job.remote_id)
    assert done.job.status == JobStatus.SUCCEEDED
    (note,) = [e for e in done.events if e.id.startswith("ftm-azure-deploy")]
    assert note.level == "warn" and "the Azure management API refused" in note.message
    assert server.deployments.records == {}
    assert done.events_cursor == [e for e in done.events if e is not note][-1].id


def test_the_emulator_ends_training_per_base_model_on_azures_dates(server, provider, tmp_path):
    from datetime import UTC, datetime

    from tests.azure.conftest import START

    server.advance((datetime(2027, 4, 5, tzinfo=UTC) - START).total_seconds())
    with pytest.raises(ProviderError) as info:
        provider.create(provider.prepare(spec_for(tmp_path)))
    message = str(info.value)
    assert not info.value.retryable and "\n" not in message
    assert message.startswith("Azure OpenAI refused creating the fine-tuning job (HTTP 400")
    assert "training on it ended on 2027-04-01" in message
    still = provider.create(provider.prepare(spec_for(tmp_path, base_model="gpt-4.1-mini")))
    assert still.remote_id in server.state.jobs  # gpt-4.1 trains until 2027-04-14


def test_a_file_failing_validation_fails_the_job_with_the_services_reason(
    server, provider, tmp_path
):
    spec = spec_for(tmp_path)
    lines = open(spec.train_path).read().splitlines()[:3]  # fewer than the 10 required
    open(spec.train_path, "w").write("\n".join(lines) + "\n")
    job = provider.create(provider.prepare(spec))
    done = _run_to_success(server, provider, job.remote_id)
    assert done.job.status == JobStatus.FAILED
    assert done.job.error is not None and "10" in done.job.error.message
    assert server.deployments.records == {}  # nothing to deploy, nothing billed


def test_deployments_survive_a_restart_of_a_persisting_sandbox(tmp_path):
    from app.sandbox.azure.server import AzureSandboxServer
    from tests.azure.conftest import START

    state_file = tmp_path / "keep" / "state.json"
    with AzureSandboxServer(port=0, start=START, frozen=True, state_file=state_file) as first:
        from providers.azure import AzureOpenAIProvider
        from tests.azure.conftest import azure_config

        AzureOpenAIProvider(azure_config(first), sleep=first.advance).deploy(MODEL)
    with AzureSandboxServer(port=0, start=START, frozen=True, state_file=state_file) as again:
        assert list(again.deployments.records) == [MODEL]
