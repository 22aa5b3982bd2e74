"""Estimate versus actual for a real local job: the tiny Llama trained by the local
provider's detached worker on this machine's CPU, recorded into the real database."""

from __future__ import annotations

import time

import pytest

from app.costs.actuals import record_pending_actuals
from app.costs.launch import estimate_for_launch
from app.database import get_engine
from db.engine import read_session, write_session
from db.models import Job, ThroughputSample
from providers.local import demo_data
from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)

pytestmark = pytest.mark.slow

# device=cpu: the same run, priced and measured on the CPU, on a machine with a GPU too.
OPTIONS = {
    "epochs": 1,
    "torch_threads": 2,
    "batch_size": 8,
    "max_seq_len": 128,
    "device": "cpu",
    "save_steps": 100_000,
    "eval_steps": 100_000,
    "early_stopping_patience": 0,
}


def test_local_job_records_measured_time_throughput_and_memory(tiny_model, ftm_home):  # noqa: F811
    from app.datasets.store import add_dataset
    from app.jobs.launch import launch_job

    path = demo_data.write_jsonl(ftm_home / "train.jsonl", demo_data.labelling_examples(48, 3))
    ds, _ = add_dataset(path, name="labels", val_fraction=0.1)
    estimate = estimate_for_launch(
        dataset_id=ds.id,
        provider="local",
        base_model=str(tiny_model),
        method="lora",
        options=OPTIONS,
        gpu="cpu",
    ).to_dict()
    assert estimate["gpu"] == "cpu"
    assert "exact hf:" in estimate["note"]  # the tiny model's own tokenizer counted the data
    job = launch_job("local", ds.id, str(tiny_model), method="lora", options=OPTIONS)
    with write_session(get_engine()) as s:
        row = s.get(Job, job.id)
        row.estimate, row.estimated_cost_usd = estimate, estimate["training_cost_usd"]

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with read_session(get_engine()) as s:
            if s.get(Job, job.id).status in ("succeeded", "failed", "cancelled"):
                break
        time.sleep(0.5)
    with write_session(get_engine()) as s:
        assert record_pending_actuals(s) == 1
    with write_session(get_engine()) as s:
        assert record_pending_actuals(s) == 0  # recorded once
    with read_session(get_engine()) as s:
        j = s.get(Job, job.id)
        sample = s.exec(
            __import__("sqlmodel").select(ThroughputSample).where(ThroughputSample.job_id == job.id)
        ).one()
    assert j.status == "succeeded", j.error
    a = j.actual
    assert a["kind"] == "local" and a["hardware"] == "cpu"
    assert a["wall_seconds"] == pytest.approx((j.finished_at - j.started_at).total_seconds())
    assert a["tokens_per_second"] == sample.tokens_per_second > 0
    assert a["peak_memory_bytes"] == sample.peak_memory_bytes
    assert a["train_seconds"] == a["train_runtime_s"] > 0
    assert j.actual_cost_usd == pytest.approx(a["wall_seconds"] / 3600 * 65 / 1000 * 0.20)
    assert a["train_time_error_pct"] == pytest.approx(
        (estimate["inputs"]["training"]["train_seconds"] - a["train_seconds"])
        / a["train_seconds"]
        * 100
    )
    assert a["cost_error_pct"] is not None and a["memory_error_pct"] is not None
