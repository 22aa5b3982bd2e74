"""A fault run on the Azure routes: rate limits, server errors and dropped connections on
every data-plane and control-plane route, yet every launch makes exactly one job, every
succeeded model exactly one deployment, and every call ends answered or as a clear error."""

from __future__ import annotations

import pytest

from app.sandbox.faults import FaultPlan
from providers.azure import AzureOpenAIProvider
from providers.errors import ProviderError
from providers.types import ChatMessage
from tests.azure.conftest import STEP_S, azure_config, spec_for

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

LAUNCHES = 12


def _create(provider: AzureOpenAIProvider, spec) -> str:
    """As ftm's launch and poller do: a create left unconfirmed is looked up by its ftm id
    before it is ever sent again."""
    for _ in range(20):
        try:
            return provider.create(spec).remote_id
        except ProviderError as err:
            assert err.retryable, err.message
            try:
                found = provider.find_by_uid(spec.ftm_job_uid)
            except ProviderError:
                continue
            if found is not None:
                return found.remote_id
    raise AssertionError("the job was never confirmed")


def test_faults_on_every_route_make_no_duplicate_and_lose_nothing(server, tmp_path):
    provider = AzureOpenAIProvider(azure_config(server, create_attempts=8), sleep=server.advance)
    plan = FaultPlan(seed=5)
    for kind in ("rate_limit", "server_error", "drop_before", "drop_after"):
        plan.add("*", kind, probability=0.06, retry_after_s=0.01)
    server.faults = plan

    made = {}
    for i in range(LAUNCHES):
        spec = None
        while spec is None:  # an upload is safe to repeat (content-addressed cache)
            try:
                spec = provider.prepare(spec_for(tmp_path, suffix=f"f{i}"))
            except ProviderError as err:
                assert err.retryable, err.message
        made[spec.ftm_job_uid] = _create(provider, spec)

    finished = {}
    for uid, remote_id in made.items():
        refreshed = None
        for _ in range(400):
            try:
                refreshed = provider.refresh(remote_id)
            except ProviderError as err:
                assert err.retryable, err.message  # only transient failures on a good job
                continue
            if refreshed.job.status.is_terminal:
                break
            server.advance(10 * STEP_S)
        assert refreshed is not None and refreshed.job.status == "succeeded"
        finished[uid] = refreshed.job.fine_tuned_model
    for model in finished.values():
        for _ in range(20):
            try:
                provider.complete(model, [ChatMessage("user", "hello")], max_tokens=3)
                break
            except ProviderError as err:
                assert err.retryable, err.message
    server.faults = None

    assert plan.total_injected() >= 30, plan.total_injected()
    for uid, remote_id in made.items():
        mine = [j.id for j in server.state.jobs.values() if j.metadata.get("ftm_job_id") == uid]
        assert mine == [remote_id]  # exactly one job per launch, the one ftm recorded
    assert len(server.state.jobs) == LAUNCHES
    deployed = {r.model for r in server.deployments.records.values()}
    assert deployed == set(finished.values())
    assert len(server.deployments.records) == LAUNCHES  # one deployment per model
