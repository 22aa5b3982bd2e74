"""The OpenAI provider's harness for ftm's contract test suite (`Provider.contract_harness`
names it): the provider talking real HTTP to a sandbox emulator on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.sandbox.server import SandboxServer
from providers.base import ContractHarness
from providers.local import demo_data
from providers.openai import OpenAIConfig, OpenAIProvider
from providers.types import JobSpec


@contextmanager
def openai_contract_harness(workdir: Path) -> Iterator[ContractHarness]:
    """A sandbox whose jobs stay queued long enough to be cancelled, the provider pointed
    at it with the sandbox's key, and a supervised job on a base model it serves."""
    train = demo_data.write_jsonl(workdir / "train.jsonl", demo_data.labelling_examples(12))
    with SandboxServer(port=0, seconds_per_step=60.0, data_dir=workdir / "sandbox") as server:
        config = OpenAIConfig(sandbox=True, sandbox_url=server.base_url, api_key=server.api_key)
        provider = OpenAIProvider(config)
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
