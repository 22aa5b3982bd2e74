"""Deployments on Azure's emulator: a fine-tune is dedicated, priced at the declared
hosting fee; stopping deletes the deployment (Azure cannot stop one) and deploying again
is a new run; a base model is serverless. Real HTTP, the real Azure client, a real DB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import database
from app.deployments.service import deploy, get, refresh, stop
from app.sandbox.azure.server import AzureSandboxServer
from providers.azure import AzureOpenAIProvider
from tests.azure.conftest import MODEL, START, STEP_S, azure_config, spec_for
from tests.azure.test_end_to_end import _run_to_success

HOSTING_USD_PER_HOUR = 1.70  # providers/azure/prices.toml, restated


@pytest.fixture
def azure_server(tmp_path):
    """Azure's emulator, frozen clock (this directory's `server` is Together's)."""
    with AzureSandboxServer(
        port=0,
        seconds_per_step=STEP_S,
        start=START,
        frozen=True,
        seed=11,
        data_dir=tmp_path / "azure-sandbox",
    ) as running:
        yield running


def test_an_azure_fine_tune_is_a_dedicated_deployment_billed_by_the_hour(azure_server, tmp_path):
    server = azure_server

    def make(name: str) -> AzureOpenAIProvider:
        assert name == "azure"
        return AzureOpenAIProvider(azure_config(server, auto_deploy=False), sleep=server.advance)

    def clock() -> datetime:
        return datetime.fromtimestamp(server.clock.now(), UTC)

    trainer = make("azure")
    job = trainer.create(trainer.prepare(spec_for(tmp_path)))
    model = _run_to_success(server, trainer, job.remote_id).job.fine_tuned_model
    name = trainer.deployment_for(model)
    assert server.deployments.get(name) is None  # auto_deploy off: nothing yet
    (option,) = trainer.deployment_hardware(model)
    assert (option.id, option.usd_per_hour) == ("standard", HOSTING_USD_PER_HOUR)
    trainer.close()

    engine = database.get_engine()
    row = deploy(engine, model, provider="azure", make=make, clock=clock).info.row
    assert (row.kind, row.state, row.remote_id) == ("dedicated", "running", name)
    assert row.usd_per_hour == pytest.approx(HOSTING_USD_PER_HOUR)
    assert server.deployments.state_of(server.deployments.get(name)) == "Succeeded"
    assert refresh(engine, row.id, make=make).row.state == "running"

    server.advance(7200.0)
    assert get(engine, row.id, now=clock()).cost_usd == pytest.approx(2 * HOSTING_USD_PER_HOUR)
    stopped = stop(engine, row.id, make=make, now=clock())
    assert stopped.row.state == "stopped" and server.deployments.get(name) is None

    again = deploy(engine, model, provider="azure", make=make, clock=clock)
    assert not again.existed and again.info.id != row.id
    assert server.deployments.puts == 2 and server.deployments.get(name) is not None

    base = deploy(engine, MODEL, provider="azure", make=make, clock=clock).info.row
    assert (base.kind, base.usd_per_hour) == ("serverless", None)
