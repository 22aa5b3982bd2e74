"""Fixtures: the Azure-shaped emulator on a random loopback port (frozen clock), and the
Azure provider pointed at it with the real ``AzureOpenAI`` client over real HTTP.

The provider's sleep advances the sandbox clock: a wait for a job or a deployment moves
simulated time on instead of the wall clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.sandbox.azure.server import AzureSandboxServer
from providers.azure import AzureConfig, AzureOpenAIProvider
from providers.types import JobSpec

START = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)
"""After OpenAI's job-creation cutoff (2027-01-06), before Azure's."""
STEP_S = 1.0
MODEL = "gpt-4o-mini-2024-07-18"

SENTIMENT = [
    ("The food was wonderful and the staff were kind", "positive"),
    ("Terrible service, cold soup, never again", "negative"),
    ("I loved the quiet garden terrace", "positive"),
    ("The room smelled of smoke and the bed was broken", "negative"),
    ("Great value and a friendly host", "positive"),
    ("Our booking was lost and nobody apologised", "negative"),
    ("Fantastic breakfast with fresh bread", "positive"),
    ("The wifi never worked and the shower was cold", "negative"),
    ("A charming old town hotel, would return", "positive"),
    ("Rude receptionist and a dirty lobby", "negative"),
    ("Spotless rooms and a lovely view of the sea", "positive"),
    ("Noisy street all night, could not sleep", "negative"),
]
SYSTEM = "Classify the review as positive or negative."


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AzureSandboxServer]:
    with AzureSandboxServer(
        port=0,
        seconds_per_step=STEP_S,
        start=START,
        frozen=True,
        seed=11,
        data_dir=tmp_path / "azure-sandbox",
    ) as running:
        yield running


def azure_config(server: AzureSandboxServer, **overrides) -> AzureConfig:
    """The provider's config for the emulator, as a user's would be for a real resource:
    endpoint, subscription and group, explicit credentials (no sandbox shortcut)."""
    values = dict(
        endpoint=server.endpoint,
        management_url=server.endpoint,
        subscription_id="sub-0001",
        resource_group="rg-ftm",
        resource_name="ftm-bridge",
        api_key=server.api_key,
        management_token=server.management_token,
        create_attempts=4,
        deploy_wait_s=600.0,
    )
    values.update(overrides)
    return AzureConfig(**values)


@pytest.fixture
def provider(server: AzureSandboxServer) -> Iterator[AzureOpenAIProvider]:
    made = AzureOpenAIProvider(azure_config(server), sleep=server.advance)
    yield made
    made.close()


def write_training(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text},
                {"role": "assistant", "content": label},
            ]
        }
        for text, label in SENTIMENT
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec_for(tmp_path: Path, **changes) -> JobSpec:
    values = dict(
        name="bridge",
        base_model=MODEL,
        train_path=str(write_training(tmp_path)),
        suffix="bridge",
        ftm_job_uid=uuid.uuid4().hex,
    )
    values.update(changes)
    return JobSpec(**values)
