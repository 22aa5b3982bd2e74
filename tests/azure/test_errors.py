"""Wrong credentials and wrong URLs: Azure's own error shape from the emulator, and one
line from the provider naming Azure OpenAI and the setting to fix (never the key)."""

from __future__ import annotations

import httpx
import openai
import pytest

from app.sandbox.faults import FaultPlan
from providers.azure import AzureOpenAIProvider
from providers.errors import ConfigurationError
from tests.azure.conftest import azure_config, spec_for

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

WRONG_KEY = "ffffffffffffffffffffffffffff1234"


def test_the_emulator_answers_a_wrong_or_missing_key_in_azures_shape(server):
    url = f"{server.endpoint}/openai/fine_tuning/jobs"
    version = {"api-version": "2025-04-01-preview"}
    for headers in ({"api-key": WRONG_KEY}, {}, {"Authorization": f"Bearer {server.api_key}"}):
        answer = httpx.get(url, params=version, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {
            "error": {"code": "401", "message": answer.json()["error"]["message"]}
        }
        assert "Access denied" in answer.json()["error"]["message"]
    assert httpx.get(url, params=version, headers={"api-key": server.api_key}).status_code == 200


def test_the_emulator_needs_a_known_api_version(server):
    url = f"{server.endpoint}/openai/files"
    key = {"api-key": server.api_key}
    missing = httpx.get(url, headers=key)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    unknown = httpx.get(url, params={"api-version": "2019-01-01"}, headers=key)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "API version not supported"


def test_the_openai_routes_are_not_served_in_azure_shape(server):
    answer = httpx.get(
        f"{server.endpoint}/v1/fine_tuning/jobs", headers={"api-key": server.api_key}
    )
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "404"


def test_a_wrong_key_is_one_line_naming_azure_and_the_variable(server, tmp_path):
    provider = AzureOpenAIProvider(azure_config(server, api_key=WRONG_KEY))
    with pytest.raises(ConfigurationError) as info:
        provider.prepare(spec_for(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Azure OpenAI refused uploading train.jsonl (HTTP 401")
    assert "set AZURE_OPENAI_API_KEY to a key of the resource" in message
    assert WRONG_KEY not in message
    assert server.state.files == {}


def test_an_unknown_api_version_is_one_line_naming_the_setting(server, tmp_path):
    provider = AzureOpenAIProvider(azure_config(server, api_version="2019-01-01"))
    with pytest.raises(ConfigurationError) as info:
        provider.list_remote_jobs()
    message = str(info.value)
    assert "\n" not in message and message.startswith("Azure OpenAI refused")
    assert "check [providers.azure] api_version and endpoint" in message


def test_a_missing_api_version_is_refused_before_anything_is_sent(server, tmp_path):
    provider = AzureOpenAIProvider(azure_config(server, api_version=""))
    with pytest.raises(ConfigurationError) as info:
        provider.list_remote_jobs()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Azure OpenAI needs an api-version on every request")
    assert "api_version" in message


def test_no_key_anywhere_says_where_to_put_one(server, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    provider = AzureOpenAIProvider(azure_config(server, api_key=None))
    with pytest.raises(ConfigurationError) as info:
        provider.list_remote_jobs()
    assert str(info.value).startswith("Azure OpenAI has no API key: set AZURE_OPENAI_API_KEY")


def test_the_key_comes_from_the_environment_and_travels_in_the_api_key_header(
    server, monkeypatch, tmp_path
):
    monkeypatch.setenv("MY_AZURE_KEY", server.api_key)
    provider = AzureOpenAIProvider(azure_config(server, api_key=None, api_key_env="MY_AZURE_KEY"))
    assert isinstance(provider.client, openai.AzureOpenAI)
    assert provider.list_remote_jobs() == []


def test_a_wrong_management_token_says_to_sign_in_again(server, provider, tmp_path):
    bad = AzureOpenAIProvider(azure_config(server, management_token="expired"))
    with pytest.raises(ConfigurationError) as info:
        bad.deploy("gpt-4o-mini-2024-07-18")
    message = str(info.value)
    assert "\n" not in message
    assert "the Azure management API refused" in message and "az login" in message


def test_deploying_without_subscription_names_the_settings(server):
    provider = AzureOpenAIProvider(azure_config(server, subscription_id=None, resource_group=None))
    with pytest.raises(ConfigurationError) as info:
        provider.deploy("ft:gpt-4o-mini-2024-07-18:org:x:abc12345")
    assert "subscription_id and resource_group" in str(info.value)


def test_create_once_after_a_lost_answer(server, provider, tmp_path):
    spec = provider.prepare(spec_for(tmp_path))
    server.faults = FaultPlan().next(1, "drop_after", "jobs.create")
    job = provider.create(spec)
    mine = [
        j for j in server.state.jobs.values() if j.metadata.get("ftm_job_id") == spec.ftm_job_uid
    ]
    assert [j.id for j in mine] == [job.remote_id]


def test_the_key_can_come_from_a_command(server, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    provider = AzureOpenAIProvider(
        azure_config(server, api_key=None, api_key_command=f"echo {server.api_key}")
    )
    assert provider.list_remote_jobs() == []
    failing = AzureOpenAIProvider(azure_config(server, api_key=None, api_key_command="exit 3"))
    with pytest.raises(ConfigurationError) as info:
        failing.list_remote_jobs()
    assert str(info.value).startswith("Azure OpenAI: the command for the API key exited with")
