"""The Azure routes serve the OpenAI emulator's handlers: every successful data-plane
answer the provider gets through the ``AzureOpenAI`` client fits the official OpenAPI
schema of the same operation (Azure's fine-tuning API is OpenAI's under ``/openai``)."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from providers.azure import AzureOpenAIProvider
from providers.types import ChatMessage
from tests.azure.conftest import STEP_S, azure_config, spec_for
from tests.openapi_spec import validate_response

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _openai_path(path: str) -> str | None:
    """The OpenAI path of an Azure data-plane path; None for the control plane."""
    if not path.startswith("/openai/"):
        return None
    if re.fullmatch(r"/openai/deployments/[^/]+/chat/completions", path):
        return "/v1/chat/completions"
    return "/v1/" + path.removeprefix("/openai/")


def test_every_data_plane_answer_fits_the_openai_spec(server, tmp_path):
    checked: list[str] = []
    failures: list[str] = []

    def check(response: httpx.Response) -> None:
        response.read()
        path = _openai_path(response.request.url.path)
        if path is None or not response.is_success or path.endswith("/content"):
            return
        try:
            validate_response(path, response.request.method, response.status_code, response.json())
            checked.append(f"{response.request.method} {path}")
        except Exception as exc:  # collected: every mismatch is reported at the end
            failures.append(f"{response.request.method} {response.request.url.path}: {exc}")

    config = azure_config(server)
    client = openai.AzureOpenAI(
        azure_endpoint=server.endpoint,
        api_version=config.api_version,
        api_key=server.api_key,
        max_retries=0,
        http_client=httpx.Client(event_hooks={"response": [check]}),
    )
    provider = AzureOpenAIProvider(config, client=client, sleep=server.advance)
    job = provider.create(provider.prepare(spec_for(tmp_path)))
    refreshed = provider.refresh(job.remote_id)
    while not refreshed.job.status.is_terminal:
        server.advance(10 * STEP_S)
        refreshed = provider.refresh(job.remote_id, refreshed.events_cursor)
    provider.complete(refreshed.job.fine_tuned_model, [ChatMessage("user", "hello")])
    provider.list_remote_jobs()
    provider.close()

    assert not failures, "\n".join(failures)
    kinds = set(checked)
    for expected in (
        "POST /v1/files",
        "POST /v1/fine_tuning/jobs",
        "POST /v1/chat/completions",
        "GET /v1/fine_tuning/jobs",
    ):
        assert expected in kinds, sorted(kinds)
    assert any(k.startswith("GET /v1/fine_tuning/jobs/") and k.endswith("/events") for k in kinds)
