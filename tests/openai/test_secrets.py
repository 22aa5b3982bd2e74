"""The API key never reaches errors (nor the database: it is never handed to it)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from providers.errors import ConfigurationError, ProviderError
from providers.openai import OpenAIConfig, OpenAIProvider
from providers.openai.config import resolve_api_key
from providers.openai.errors import translate
from tests.database_contents import database_bytes

KEY = "sk-proj-THISISASECRETKEY0123456789abcdef"


def test_key_from_env_then_command(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert resolve_api_key(OpenAIConfig()) == KEY
    monkeypatch.delenv("OPENAI_API_KEY")
    assert (
        resolve_api_key(OpenAIConfig(api_key_command="echo sk-from-command")) == "sk-from-command"
    )


def test_missing_key_says_what_to_do():
    with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY"):
        resolve_api_key(OpenAIConfig())


def test_failing_key_command_does_not_echo_its_output():
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key(OpenAIConfig(api_key_command=f"echo {KEY}; exit 3"))
    assert KEY not in str(info.value) and "status 3" in str(info.value)


def test_sandbox_needs_no_key():
    assert resolve_api_key(OpenAIConfig(sandbox=True))


def test_an_api_error_quoting_the_key_is_redacted():
    request = httpx2.Request("POST", "https://api.openai.com/v1/fine_tuning/jobs")
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    response = httpx2.Response(401, json=body, request=request)
    exc = openai.AuthenticationError(f"Error code: 401 - {body}", response=response, body=body)
    err = translate(exc, "creating the job", [KEY])
    assert isinstance(err, ConfigurationError)
    assert KEY not in str(err) and KEY not in err.message
    assert "Incorrect API key provided" in str(err)


def test_a_connection_error_with_the_key_in_the_env_does_not_contain_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    # a closed port: real SDK, real connection attempt, real failure
    provider = OpenAIProvider(
        OpenAIConfig(base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_s=2)
    )
    with pytest.raises(ProviderError) as info:
        provider.refresh("ftjob-1")
    assert KEY not in str(info.value) and KEY not in repr(info.value.__dict__)
    assert info.value.__cause__ is None and info.value.retryable


def test_azure_endpoint_builds_an_azure_client(monkeypatch):
    import openai

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    provider = OpenAIProvider(
        OpenAIConfig(
            azure_endpoint="https://example.openai.azure.com",
            azure_api_version="2025-04-01-preview",
        )
    )
    client = provider.client
    assert isinstance(client, openai.AzureOpenAI)
    assert str(client.base_url).startswith("https://example.openai.azure.com/openai")
    assert provider.config.endpoint == "https://example.openai.azure.com"


def test_settings_reach_the_provider(monkeypatch):
    from app import database
    from app.jobs.providers import make_provider

    monkeypatch.setenv("FTM_OPENAI__BASE_URL", "http://gateway.local/v1")
    monkeypatch.setenv("FTM_OPENAI__ORGANIZATION", "org-x")
    monkeypatch.setenv("FTM_OPENAI__PROJECT", "proj-y")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    database.reset()
    provider = make_provider("openai")
    assert not provider.simulated
    client = provider.client
    assert str(client.base_url) == "http://gateway.local/v1/"
    assert client.organization == "org-x" and client.project == "proj-y"
    assert client.max_retries == 0  # ftm retries itself (create reconciles first)


def _files_holding(needle: bytes, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if needle in path.read_bytes():
                found.append(str(path))
    return found


def test_the_key_is_in_no_file_log_export_or_sandbox_state(tmp_path, ftm_home, monkeypatch, caplog):
    """A whole paid-mode workflow with the key in the environment (data add, launch, watch
    to the end, eval, promote, export to a file and to stdout): afterwards the key is
    in no file under FTM_HOME (the database and its WAL, the job directories), in no export,
    in the emulator's persisted state and uploads, in no CLI output and in no log record
    (every logger at DEBUG, the SDK's and httpx's included)."""
    import json
    import logging
    import time

    from click.testing import CliRunner

    from app import database
    from app.cli.main import cli
    from app.sandbox.server import SandboxServer
    from tests.tiny import labelling_files

    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []

    def ftm(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        return result.output

    sandbox_dir = tmp_path / "sandbox"
    with SandboxServer(
        port=0, seconds_per_step=0.01, seed=3, state_file=sandbox_dir / "state.json"
    ) as server:
        # The emulator as if it were the paid API: a base URL and our key, no sandbox flag.
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("FTM_OPENAI__BASE_URL", server.base_url)
        database.reset()
        train, _ = labelling_files(tmp_path, n_train=40, n_validation=0)
        ftm("data", "add", str(train), "--name", "labels")
        ftm("launch", "--dataset", "labels", "--model", "gpt-4o-mini-2024-07-18", "--yes")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ftm("watch", "--once")
            jobs = json.loads(ftm("jobs", "list", "--json"))
            if jobs[0]["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert jobs[0]["status"] == "succeeded", jobs
        ftm(
            "eval",
            "--task",
            "labels",
            "--dataset",
            "labels",
            "--job",
            "1",
            "--few-shot",
            "2",
            "--provider",
            "openai",
            "--base",
            "gpt-4o-mini-2024-07-18",
            "--no-general",
        )
        ftm(
            "promote",
            "--task",
            "labels",
            "--model",
            jobs[0]["fine_tuned_model"],
            "--override",
            "--why",
            "secrets test",
        )
        ftm(
            "models",
            "export",
            "--alias",
            "production",
            "--task",
            "labels",
            "-o",
            str(tmp_path / "export.json"),
        )
        ftm("models", "export", "--alias", "production", "--task", "labels", "--format", "env")
    stored = database_bytes(ftm_home, database.get_engine())
    database.reset()  # close the engine: the WAL is checkpointed into the file

    # The scan sees what is stored: the fine-tuned model's id is in the database, the
    # emulator's state and the export.
    model_id = jobs[0]["fine_tuned_model"].encode()
    assert model_id in stored
    for place in (sandbox_dir / "state.json", tmp_path / "export.json"):
        assert _files_holding(model_id, place.parent), place

    secret = KEY.encode()
    assert secret not in stored, "the key was stored in the database"
    assert not _files_holding(secret, tmp_path), "the key was written to disk"
    assert not [o for o in outputs if KEY in o], "the key was printed"
    assert KEY not in caplog.text, "the key was logged"
    assert len(caplog.records) > 10  # the loggers were heard (requests, polls)
