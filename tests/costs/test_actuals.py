"""Estimate versus actual: a sandbox job run end to end through the real poller, and a
local job's rows as the local worker writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.costs.actuals import record_actual
from app.costs.catalog import load_catalog
from app.costs.launch import estimate_for_launch
from app.database import get_engine
from db.engine import read_session, write_session
from db.models import Job, ThroughputSample
from providers.types import Hyperparameters
from tests.costs.conftest import chat_examples, store_dataset
from tests.jobs.conftest import MODEL, engine, job_row, poll_until, sandbox, use_sandbox  # noqa: F401


def test_sandbox_job_records_actual_beside_estimate(engine, sandbox, ftm_home):  # noqa: F811
    from app.datasets.store import add_dataset
    from app.jobs.launch import launch_job
    from app.jobs.poller import Poller

    source = ftm_home.parent / "tickets.jsonl"  # beside the home (which PostgreSQL never makes)
    source.write_text("".join(json.dumps(e) + "\n" for e in chat_examples(30)))
    ds, _ = add_dataset(source, name="tickets")  # the real intake: split, exact counts
    estimate = estimate_for_launch(
        dataset_id=ds.id,
        provider="openai",
        base_model=MODEL,
        hyperparameters=Hyperparameters(n_epochs=2),
    ).to_dict()
    assert estimate["simulated"] and estimate["epochs"] == 2
    assert "nothing is billed" in estimate["note"]
    job = launch_job("openai", ds.id, MODEL, hyperparameters={"n_epochs": 2})
    with write_session(engine) as s:  # what the launch wizard does with its preview
        row = s.get(Job, job.id)
        row.estimate, row.estimated_cost_usd = estimate, estimate["training_cost_usd"]
    poller = Poller(engine)
    poll_until(poller, lambda: job_row(engine, job.id).status in ("succeeded", "failed"))
    poller.close()

    j = job_row(engine, job.id)
    assert j.status == "succeeded" and j.trained_tokens
    actual = j.actual
    assert actual["kind"] == "hosted" and actual["simulated"] and actual["billed_usd"] == 0
    assert actual["trained_tokens"] == j.trained_tokens
    assert j.actual_cost_usd == pytest.approx(j.trained_tokens / 1e6 * 3.00)
    assert actual["estimated_billable_tokens"] == estimate["billable_tokens"]
    # Both count by the public recipe: the estimate is exact.
    assert estimate["billable_tokens"] == j.trained_tokens
    assert actual["tokens_error_pct"] == pytest.approx(
        (estimate["billable_tokens"] - j.trained_tokens) / j.trained_tokens * 100
    )
    assert actual["cost_error_pct"] == pytest.approx(
        (j.estimated_cost_usd - j.actual_cost_usd) / j.actual_cost_usd * 100
    )
    # Recording again changes nothing (the poller may see the end twice).
    with write_session(engine) as s:
        again = record_actual(s, s.get(Job, job.id))
    assert again == actual


def _tiny_config(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps(
            {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 512,
                "tie_word_embeddings": True,
            }
        )
    )
    return path


def test_local_job_rows_record_time_throughput_and_memory(ftm_home):
    """A local job's rows as the local worker leaves them: the job with its start and end,
    trained tokens, and one throughput sample with peak memory."""
    ds = store_dataset(ftm_home, "tickets", chat_examples(60))
    model = _tiny_config(ftm_home / "tiny")
    estimate = estimate_for_launch(
        dataset_id=ds.id,
        provider="local",
        base_model=str(model),
        method="lora",
        options={"epochs": 1, "max_seq_len": 256},
        gpu="cpu",
    ).to_dict()
    assert estimate["gpu"] == "cpu" and estimate["training_time_s"] > 0
    assert estimate["peak_memory_bytes"] > 0
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with write_session(get_engine()) as s:
        job = Job(
            name="tiny",
            provider="local",
            base_model=str(model),
            dataset_id=ds.id,
            method="lora",
            status="succeeded",
            started_at=start,
            finished_at=start + timedelta(seconds=180),
            trained_tokens=90_000,
            spec={"options": {"epochs": 1}},
            estimate=estimate,
            estimated_cost_usd=estimate["training_cost_usd"],
        )
        s.add(job)
        s.flush()
        s.add(
            ThroughputSample(
                job_id=job.id,
                hardware="cpu",
                method="lora",
                model_params=100_000,
                seq_len=256,
                tokens_per_second=600.0,
                achieved_flops_per_s=1e9,
                peak_memory_bytes=400_000_000,
            )
        )
        job_id = job.id
    with write_session(get_engine()) as s:
        first = dict(record_actual(s, s.get(Job, job_id)))
    with write_session(get_engine()) as s:
        second = dict(record_actual(s, s.get(Job, job_id)))
    assert first == second  # idempotent
    j = job_row(get_engine(), job_id)
    a = j.actual
    assert a["kind"] == "local" and a["wall_seconds"] == 180
    assert a["tokens_per_second"] == 600 and a["train_seconds"] == pytest.approx(150)
    assert a["peak_memory_bytes"] == 400_000_000 and a["hardware"] == "cpu"
    cpu_per_hour = 65 / 1000 * 0.20  # the catalog's CPU: 65 W at $0.20/kWh
    assert j.actual_cost_usd == pytest.approx(180 / 3600 * cpu_per_hour)
    assert a["time_error_pct"] == pytest.approx((estimate["training_time_s"] - 180) / 180 * 100)
    assert a["memory_error_pct"] == pytest.approx((estimate["peak_memory_bytes"] - 4e8) / 4e8 * 100)


def test_a_hosted_job_without_trained_tokens_records_no_cost(ftm_home):
    with write_session(get_engine()) as s:
        job = Job(
            name="x", provider="openai", base_model=MODEL, method="supervised", status="cancelled"
        )
        s.add(job)
        s.flush()
        a = record_actual(s, job)
    assert a["cost_usd"] is None and "no trained_tokens" in a["note"]
    with read_session(get_engine()) as s:
        assert s.get(Job, job.id).actual_cost_usd is None


def test_pending_actuals_are_recorded_once_for_jobs_ended_elsewhere(ftm_home):
    """Local workers end their jobs in the database themselves; the sweep catches those."""
    from app.costs.actuals import record_pending_actuals

    start = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with write_session(get_engine()) as s:
        s.add(
            Job(
                name="done",
                provider="local",
                base_model="m",
                method="lora",
                status="failed",
                started_at=start,
                finished_at=start + timedelta(minutes=30),
                actual={"hardware": "cuda:NVIDIA L4"},
            )
        )
        s.add(
            Job(
                name="running",
                provider="local",
                base_model="m",
                method="lora",
                status="running",
                started_at=start,
            )
        )
    with write_session(get_engine()) as s:
        assert record_pending_actuals(s) == 1
    with write_session(get_engine()) as s:
        assert record_pending_actuals(s) == 0
    with read_session(get_engine()) as s:
        done = s.exec(__import__("sqlmodel").select(Job).where(Job.name == "done")).one()
    l4 = load_catalog(use_settings=False).hourly_price(load_catalog(use_settings=False).gpu("l4"))
    # A failed run still used its GPU for 30 minutes.
    assert done.actual["hardware"] == "l4" and done.actual["status"] == "failed"
    assert done.actual_cost_usd == pytest.approx(0.5 * l4.usd_per_hour)


def test_a_model_without_prices_records_tokens_and_says_why(ftm_home):
    with write_session(get_engine()) as s:
        job = Job(
            name="x",
            provider="openai",
            base_model="gpt-9-2030-01-01",
            method="supervised",
            status="succeeded",
            trained_tokens=12_345,
        )
        s.add(job)
        s.flush()
        a = record_actual(s, job)
    assert a["trained_tokens"] == 12_345 and a["cost_usd"] is None
    assert "no OpenAI prices for model 'gpt-9-2030-01-01'" in a["note"]
