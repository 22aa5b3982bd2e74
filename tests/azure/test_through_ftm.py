"""Azure through ftm itself, by name only: settings from ``[providers.azure]``, the
launch plan's lifecycle warnings and serving window (declared by the provider, worded by
app/lifecycle.py), `ftm launch` against the emulator, and `ftm sandbox --provider azure`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.jobs.launch import plan_launch
from app.jobs.providers import make_provider
from app.settings import get_settings
from db.engine import read_session
from db.models import Job
from providers.azure import AzureOpenAIProvider, AzureSettings
from tests.conftest import REPO_ROOT
from tests.jobs.conftest import make_dataset

MINI_4O = "gpt-4o-mini-2024-07-18"
MINI_41 = "gpt-4.1-mini-2025-04-14"


@pytest.fixture
def engine():
    get_settings.cache_clear()
    yield database.get_engine()
    get_settings.cache_clear()


def test_settings_come_from_the_providers_azure_table(ftm_home, monkeypatch):
    ftm_home.mkdir(parents=True, exist_ok=True)
    (ftm_home / "config.toml").write_text(
        '[providers.azure]\nendpoint = "https://bridge.openai.azure.com"\n'
        'subscription_id = "sub-1"\nresource_group = "rg-1"\n'
        'base_deployments = { "gpt-4o-mini-2024-07-18" = "mini-prod" }\n'
    )
    monkeypatch.setenv("FTM_PROVIDERS__AZURE__API_VERSION", "2024-10-21")
    get_settings.cache_clear()
    provider = make_provider("azure")
    assert isinstance(provider, AzureOpenAIProvider)
    assert provider.azure.endpoint == "https://bridge.openai.azure.com"
    assert provider.azure.api_version == "2024-10-21"
    assert provider.deployment_for(MINI_4O) == "mini-prod"
    assert provider.model_endpoint() == "https://bridge.openai.azure.com/openai"
    assert provider.azure.deployments_path() == (
        "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.CognitiveServices"
        "/accounts/bridge/deployments"
    )
    assert "api_key" not in AzureSettings.model_fields  # keys are never settings


def test_the_plan_warns_with_azures_own_dates_not_openais(engine, tmp_path):
    make_dataset(engine, tmp_path)
    feb = date(2027, 2, 1)  # OpenAI took its last job on 2027-01-06
    openai_plan = plan_launch("openai", "toy", MINI_4O, today=feb, engine=engine)
    assert any("OpenAI stopped accepting" in w for w in openai_plan.warnings)

    plan = plan_launch("azure", "toy", MINI_4O, today=feb, engine=engine)
    assert plan.problems == []
    assert not any("stopped accepting" in w for w in plan.warnings), plan.warnings
    assert (
        "Azure OpenAI accepts new fine-tuning jobs until 2027-04-01 (59 days left)" in plan.warnings
    )
    assert any("hosting is billed about $1.70/hour" in w for w in plan.warnings)
    # gpt-4.1-mini trains until 2027-04-14: 72 days away, not yet worth a warning.
    later = plan_launch("azure", "toy", MINI_41, today=feb, engine=engine)
    assert not any("accepts new fine-tuning jobs" in w for w in later.warnings)
    # The estimate's serving window ends with Azure's deployments, not OpenAI's retirement.
    assert plan.estimate.estimate["serving"]["serves_until"] == "2027-10-01"
    assert openai_plan.estimate.estimate["serving"]["serves_until"] == "2027-01-14"

    # Hosting the deployment is always-on: $1.70/hour spread over the month's requests.
    azure_cost, openai_cost = plan.estimate.estimate, openai_plan.estimate.estimate
    assert azure_cost["inputs"]["hosting"]["usd_per_hour"] == 1.70
    assert azure_cost["cost_per_1k_requests_usd"] - openai_cost[
        "cost_per_1k_requests_usd"
    ] == pytest.approx(1.70 * 24 * 365.25 / 12 / 10_000 * 1000)
    assert "hosting its deployment $1.70/hour" in azure_cost["note"]
    assert openai_cost["inputs"]["hosting"]["usd_per_hour"] is None
    assert azure_cost["break_even_requests"] is None  # hosting outweighs the shorter prompt

    april = plan_launch("azure", "toy", MINI_4O, today=date(2027, 4, 2), engine=engine)
    assert (
        "Azure OpenAI stopped accepting new fine-tuning jobs after 2027-04-01; "
        "a job created now will be refused" in april.warnings
    )


def test_a_base_model_azure_cannot_tune_is_a_problem(engine, tmp_path):
    make_dataset(engine, tmp_path)
    plan = plan_launch("azure", "toy", "gpt-3.5-turbo-0125", engine=engine)
    assert any("cannot be fine-tuned on Azure OpenAI" in p for p in plan.problems)


def test_ftm_launch_creates_the_job_on_the_azure_emulator(engine, tmp_path, monkeypatch):
    from app.sandbox.azure.server import AzureSandboxServer

    make_dataset(engine, tmp_path)
    with AzureSandboxServer(port=0, seconds_per_step=0.01, seed=3) as server:
        monkeypatch.setenv("FTM_PROVIDERS__AZURE__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__AZURE__SANDBOX_URL", server.endpoint)
        get_settings.cache_clear()
        result = CliRunner().invoke(
            cli,
            ["launch", "--provider", "azure", "--dataset", "toy", "--model", MINI_4O, "--yes"],
        )
        assert result.exit_code == 0, result.output
        with read_session(engine) as session:
            (job,) = session.exec(select(Job)).all()
        assert job.provider == "azure" and job.simulated
        assert job.remote_id in server.state.jobs


@pytest.mark.no_database
def test_ftm_sandbox_provider_azure_prints_how_to_point_ftm_at_it(tmp_path):
    env = {**os.environ, "FTM_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "sandbox", "--provider", "azure", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("Press Ctrl-C" in s for s in seen):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
        banner = "".join(seen)
        match = re.search(r"FTM_PROVIDERS__AZURE__SANDBOX_URL=(http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        assert "SIMULATED Azure OpenAI resource" in banner
        assert "FTM_PROVIDERS__AZURE__SANDBOX=true" in banner
        assert "[providers.azure]" in banner
        key = re.search(r"api-key (\w+)", banner).group(1)
        client = openai.AzureOpenAI(
            azure_endpoint=match.group(1), api_version="2025-04-01-preview", api_key=key
        )
        for _ in range(50):  # the banner is printed just before uvicorn accepts connections
            try:
                assert client.fine_tuning.jobs.list().data == []
                break
            except openai.APIConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("the Azure sandbox did not answer")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert (Path(tmp_path / "home" / "sandbox" / "azure" / "state.json")).exists()


def test_a_new_launch_does_not_default_to_an_unconfigured_azure(ftm_home, monkeypatch):
    from app.jobs.providers import default_provider

    get_settings.cache_clear()
    assert default_provider(["azure", "local", "openai"]) == "openai"
    monkeypatch.setenv("FTM_PROVIDERS__AZURE__ENDPOINT", "https://bridge.openai.azure.com")
    get_settings.cache_clear()
    assert default_provider(["azure", "local", "openai"]) == "azure"
    get_settings.cache_clear()


def test_ftm_sandbox_azure_refuses_openais_organization_profiles():
    result = CliRunner().invoke(cli, ["sandbox", "--provider", "azure", "--org", "new"])
    assert result.exit_code != 0
    assert (
        "--org do(es) not apply to the Azure OpenAI emulator; leave it out with --provider azure"
        in result.output
    )
