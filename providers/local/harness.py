"""The local provider's harness for ftm's contract test suite (`Provider.contract_harness`):
a tiny model built offline in seconds, a small labelling dataset and a CPU LoRA spec."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from providers.base import ContractHarness
from providers.local import demo_data
from providers.local.provider import LocalProvider
from providers.types import JobSpec


@contextmanager
def contract_harness(workdir: Path) -> Iterator[ContractHarness]:
    """A provider writing job directories under ``workdir`` (no database) and a job on
    the tiny model; the provider is closed afterwards (its workers stopped)."""
    from providers.local.tiny_model import build_tiny_model  # torch: only when run

    # Under <home>/models, where the provider lists the model directories it knows.
    model = build_tiny_model(
        workdir / "models" / "tiny", demo_data.corpus_texts(), pretrain_steps=20
    )
    train = demo_data.write_jsonl(workdir / "train.jsonl", demo_data.labelling_examples(16))
    provider = LocalProvider(jobs_dir=workdir / "jobs", database_url=None)
    spec = JobSpec(
        name="contract",
        base_model=str(model),
        train_path=str(train),
        method=provider.default_method(),
        ftm_job_uid=uuid.uuid4().hex,
        options={"device": "cpu", "torch_threads": 1},
    )
    try:
        yield ContractHarness(provider=provider, spec=spec)
    finally:
        provider.close()
