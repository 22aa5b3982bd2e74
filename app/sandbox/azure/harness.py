"""The Azure provider's harness for ftm's contract test suite (`Provider.contract_harness`
names it): the provider talking real HTTP, through the ``AzureOpenAI`` client, to the
Azure-shaped sandbox on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.sandbox.azure.server import AzureSandboxServer
from providers.azure import AzureConfig, AzureOpenAIProvider
from providers.base import ContractHarness
from providers.local import demo_data
from providers.types import JobSpec


@contextmanager
def azure_contract_harness(workdir: Path) -> Iterator[ContractHarness]:
    """A sandbox whose jobs stay queued long enough to be cancelled, the provider pointed
    at it as at a real resource (endpoint, control plane, key and token), and a supervised
    job on a base model Azure still fine-tunes."""
    train = demo_data.write_jsonl(workdir / "train.jsonl", demo_data.labelling_examples(12))
    with AzureSandboxServer(
        port=0, seconds_per_step=60.0, data_dir=workdir / "azure-sandbox"
    ) as server:
        config = AzureConfig(
            endpoint=server.endpoint,
            management_url=server.endpoint,
            subscription_id="sub-contract",
            resource_group="rg-contract",
            resource_name="ftm-contract",
            api_key=server.api_key,
            management_token=server.management_token,
        )
        provider = AzureOpenAIProvider(config)
        spec = JobSpec(
            name="contract",
            base_model="gpt-4o-mini-2024-07-18",
            train_path=str(train),
            method=provider.default_method(),
            ftm_job_uid=uuid.uuid4().hex,
        )
        try:
            yield ContractHarness(provider=provider, spec=spec)
        finally:
            provider.close()
