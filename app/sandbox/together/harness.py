"""The Together provider's harness for ftm's contract test suite (`Provider.contract_harness`
names it): the provider talking real HTTP, through the ``together`` SDK, to the Together
emulator on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.sandbox.together.server import TogetherSandboxServer
from providers.base import ContractHarness
from providers.local import demo_data
from providers.together import TogetherProvider
from providers.together.config import TogetherConfig
from providers.types import JobSpec


@contextmanager
def together_contract_harness(workdir: Path) -> Iterator[ContractHarness]:
    """An emulator whose jobs stay queued long enough to be cancelled (a few 4 s steps:
    the create, refresh and cancel take well under one) and whose cancel lands one step
    later, the provider pointed at it, and a supervised LoRA job on a base model it
    fine-tunes."""
    train = demo_data.write_jsonl(workdir / "train.jsonl", demo_data.labelling_examples(12))
    with TogetherSandboxServer(
        port=0, seconds_per_step=4.0, data_dir=workdir / "together-sandbox"
    ) as server:
        provider = TogetherProvider(TogetherConfig(sandbox=True, sandbox_url=server.base_url))
        spec = JobSpec(
            name="contract",
            base_model="meta-llama/Llama-3.2-1B-Instruct",
            train_path=str(train),
            method=provider.default_method(),
            ftm_job_uid=uuid.uuid4().hex,
        )
        try:
            yield ContractHarness(provider=provider, spec=spec)
        finally:
            provider.close()
