"""A 403 on create is final: the organization may not create jobs (the service's wind-down,
announced 2026-05-07). The real provider, the real SDK, the sandbox refusing as the live API does."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from app.sandbox.faults import FaultPlan
from app.sandbox.server import SERVICE_SUNSET, SandboxServer
from providers.errors import ProviderError
from providers.openai import OpenAIProvider
from providers.openai.config import OpenAIConfig
from providers.types import JobSpec
from tests.jobs.conftest import MODEL, chat_example

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.mark.parametrize(
    ("day", "org"), [("2027-01-07", None), ("2026-07-02", "inactive"), ("2026-05-07", "new")]
)
def test_a_403_on_create_is_final_and_sent_once(tmp_path, day, org):
    start = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    with SandboxServer(
        port=0, seconds_per_step=0.01, start=start, frozen=True, sunset=SERVICE_SUNSET, org=org
    ) as server:
        provider = OpenAIProvider(
            OpenAIConfig(sandbox=True, sandbox_url=server.base_url, create_attempts=4)
        )
        train = tmp_path / "train.jsonl"
        train.write_text("".join(json.dumps(chat_example(i)) + "\n" for i in range(12)))
        spec = provider.prepare(
            JobSpec(
                name="refused",
                base_model=MODEL,
                train_path=str(train),
                ftm_job_uid=uuid.uuid4().hex,
            )
        )
        # A zero-delay "slow" fault on every job route only counts the requests.
        server.faults = FaultPlan().add("jobs.*", "slow", delay_s=0.0)
        with pytest.raises(ProviderError) as info:
            provider.create(spec)
        err = info.value
        assert err.code == "training_not_available" and err.retryable is False
        assert "HTTP 403" in err.message and "Fine-tuning is not available" in err.message
        # One create; no retry, and no lookup by uid (nothing can have been made).
        assert server.faults.injected == Counter({("jobs.create", "slow"): 1})
        assert server.state.jobs == {}
