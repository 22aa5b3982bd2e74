"""Measured throughput of finished local jobs replaces the default MFU for their hardware."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from sqlmodel import select

from app.costs.calibration import hardware_key
from app.costs.catalog import load_catalog
from app.costs.local_memory import LocalTrainingConfig
from app.costs.local_training import estimate_local_training
from app.costs.model_shapes import ALL_LINEAR, model_shape
from app.database import get_engine
from db.engine import read_session, write_session
from db.models import ThroughputSample
from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)


def test_device_names_map_to_catalog_keys():
    c = load_catalog(use_settings=False)
    assert hardware_key("NVIDIA H100 80GB HBM3", c) == "h100"
    assert hardware_key("NVIDIA H200", c) == "h200"
    assert hardware_key("NVIDIA A100-SXM4-80GB", c) == "a100-80gb"
    assert hardware_key("NVIDIA L40S", c) == "l40s"
    assert hardware_key("NVIDIA L4", c) == "l4"
    assert hardware_key("NVIDIA GeForce RTX 4090", c) == "rtx-4090"
    assert hardware_key("cpu", c) == "cpu"


def test_measured_throughput_replaces_the_default_mfu():
    c = load_catalog(use_settings=False)
    shape = model_shape("meta-llama/Llama-3.1-8B")
    cfg = LocalTrainingConfig(method="lora", seq_len=512, packing=True, epochs=1)
    counts = np.full(1000, 400, dtype=np.uint32)  # 400,000 real tokens
    with read_session(get_engine()) as s:
        before = estimate_local_training(s, counts, shape, cfg, c, gpu="h100")
    assert before.calibration.source == "default" and before.calibration.mfu == 0.30
    with write_session(get_engine()) as s:
        # An earlier LoRA run of the same model on an H100 sustained 4,000 tokens/s
        # (another GPU's sample must not count).
        s.add(
            ThroughputSample(
                hardware="NVIDIA H100 80GB HBM3",
                method="lora",
                model_params=shape.params,
                seq_len=512,
                tokens_per_second=4000.0,
                achieved_flops_per_s=1.0,
            )
        )
        s.add(
            ThroughputSample(
                hardware="NVIDIA A100-SXM4-80GB",
                method="lora",
                model_params=shape.params,
                seq_len=512,
                tokens_per_second=99.0,
                achieved_flops_per_s=1.0,
            )
        )
    with read_session(get_engine()) as s:
        after = estimate_local_training(s, counts, shape, cfg, c, gpu="h100")
    assert after.calibration.source == "measured" and len(after.calibration.sample_ids) == 1
    # Same model and settings: the estimate is the measured rate, whatever FLOPs it implies.
    assert after.train_seconds == pytest.approx(400_000 / 4000.0)
    assert after.calibration.mfu == pytest.approx(4000 * after.flops_per_token / 989e12)


# ------------------------------------------------------- samples counted as the estimate counts


def test_a_sample_is_one_devices_rate_over_the_timed_steps():
    from providers.local.throughput import per_device_throughput

    # Two ranks: each step's tokens are summed over both; the slow first (warm-up) step
    # is left out; one device's rate is half the pair's.
    t = per_device_throughput([5.0, 1.0, 1.0], [100, 400, 400], world_size=2)
    assert (t.timed_steps, t.warmup_steps, t.world_size) == (2, 1, 2)
    assert t.train_seconds == 2.0 and t.tokens == 800
    assert t.tokens_per_second == 200.0
    # A one-step run has nothing but its warm-up: timed whole rather than not at all.
    assert per_device_throughput([2.0], [100], world_size=1).tokens_per_second == 50.0


def _sum_steps_on_rank(rank: int, store: str, out: str) -> None:
    """One rank of a real 2-process gloo group: its own tokens per step, summed over ranks."""
    import json

    import torch
    import torch.distributed as dist

    from providers.local.throughput import _summed_over_ranks

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        mine = [10 + rank, 20 * (rank + 1), 7]  # ranks pad differently
        summed = _summed_over_ranks(mine, torch.device("cpu"))
    finally:
        dist.destroy_process_group()
    with open(f"{out}.{rank}", "w") as f:
        json.dump(summed, f)


@pytest.mark.no_database
def test_step_tokens_are_summed_over_the_ranks_of_a_real_process_group(tmp_path):
    import json

    import torch.multiprocessing as mp

    out = tmp_path / "summed"
    mp.spawn(_sum_steps_on_rank, args=(str(tmp_path / "store"), str(out)), nprocs=2)
    for rank in (0, 1):
        assert json.loads(out.with_name(f"summed.{rank}").read_text()) == [21, 60, 14]


def test_the_step_timer_counts_the_tokens_the_estimator_counts():
    """Without packing, padded micro-batches (as `training_tokens` counts them); with
    packing, real tokens; never evaluation or no-grad (reference) forwards."""
    import torch

    from app.costs.local_time import training_tokens
    from providers.local.throughput import estimator_context, make_step_timer

    class Model(torch.nn.Module):
        def forward(self, input_ids=None, attention_mask=None):
            return input_ids

    lengths = [10, 3]  # one micro-batch of two rows, padded to 10
    ids = torch.ones(2, 10, dtype=torch.long)
    mask = torch.zeros(2, 10, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    args = SimpleNamespace(device=torch.device("cpu"))
    counted = {}
    for packing in (False, True):
        model, timer = Model(), make_step_timer(packing)
        timer.on_train_begin(args, SimpleNamespace(epoch=0.0), None, model=model)
        timer.on_step_begin(args, None, None)
        model.train()
        model(input_ids=ids, attention_mask=mask)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)  # a reference model's pass
        model.eval()
        model(input_ids=ids, attention_mask=mask)  # evaluation
        timer.on_step_end(args, None, None)
        timer.on_train_end(args, SimpleNamespace(epoch=1.0), None)
        assert len(timer.log.seconds) == 1 and timer.log.seconds[0] > 0
        counted[packing] = timer.log.tokens[0]
        context = estimator_context(timer.log, packing=packing, max_seq_len=8)
        counted[packing, "context"] = context
    cfg = LocalTrainingConfig(method="lora", seq_len=64, micro_batch=2, epochs=1)
    expected = training_tokens(np.array(lengths, dtype=np.uint32), cfg)
    assert counted[False] == expected.padded == 20
    assert counted[True] == expected.real == 13
    assert counted[False, "context"] == expected.mean_context == 10
    assert counted[True, "context"] == 8  # packed rows of max_seq_len (13 real tokens)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_a_real_runs_sample_calibrates_back_to_its_rate(method, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    """A tiny job trained by the real worker (QLoRA in 4-bit on the CPU, or LoRA) writes a
    sample; estimating the same job on the same hardware then predicts the rate it
    measured, and that rate is over training steps only (a slow evaluation is not in it)."""
    import time

    from transformers import Trainer

    from app.settings import get_settings
    from db.models import Job
    from providers.local import LocalProvider
    from providers.local.worker import StopRequest, run
    from providers.types import JobSpec, JobStatus
    from tests.local.conftest import new_job_row
    from tests.tiny import labelling_files

    pause, evaluations, n_train = 1.0, 2, 8  # evaluations: n_train // eval_steps
    evaluate = Trainer._evaluate

    def slow_evaluate(self, *args, **kwargs):
        time.sleep(pause)  # evaluation time, which is not training time
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_evaluate", slow_evaluate)
    s = get_settings()
    get_engine()
    provider = LocalProvider(jobs_dir=s.jobs_dir, database_url=s.resolved_database_url)
    train, val = labelling_files(tmp_path, n_train=n_train, n_validation=2)
    options = dict(
        device="cpu",
        torch_threads=1,
        r=8,
        epochs=1,
        batch_size=1,  # no padding: the estimator's tokens are the job's real tokens
        max_seq_len=128,
        # evaluations after steps 3 and 6, none at the end: timing from one step's end to
        # the next would take each one in
        eval_steps=3,
        save_steps=999,  # no checkpoint: not what this test is about
        early_stopping_patience=0,
    )
    uid = new_job_row("calibrate", str(tiny_model), method)
    spec = JobSpec(
        name="calibrate",
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=str(val),
        method=method,
        ftm_job_uid=uid,
        options=options,
    )
    job, hp = provider.write_job(provider.prepare(spec))
    assert run(job, StopRequest()) == JobStatus.SUCCEEDED
    with read_session(get_engine()) as session:
        row = session.exec(select(Job).where(Job.uid == uid)).one()
        sample = session.exec(
            select(ThroughputSample).where(ThroughputSample.job_id == row.id)
        ).one()
    shape = model_shape(tiny_model)
    assert sample.world_size == 1 and sample.method == method
    assert sample.flops_facts["method"] == method
    assert sample.flops_facts["trainable_params"] == shape.lora_params(8, ALL_LINEAR)
    # all parameters at their real size, 4-bit or not (the shape ignores the norms)
    assert sample.model_params == pytest.approx(
        shape.params + shape.lora_params(8, ALL_LINEAR), rel=0.01
    )

    # Time: the training steps only. Evaluation slept `pause` s at each evaluation; train() took
    # all of it, the sample's rate did not.
    trained = row.trained_tokens
    wall = row.actual["train_runtime_s"]
    assert wall > pause * evaluations
    assert trained / sample.tokens_per_second < wall - pause * evaluations

    # The same job, estimated on the same hardware: the sample's rate comes back.
    context = sample.flops_facts["context"]
    counts = np.full(n_train, round(context), dtype=np.uint32)
    cfg = LocalTrainingConfig(
        method=method,
        rank=8,
        seq_len=128,
        micro_batch=1,
        gradient_checkpointing=hp["gradient_checkpointing"],
        epochs=1,
    )
    c = load_catalog(use_settings=False)
    with read_session(get_engine()) as session:
        est = estimate_local_training(session, counts, shape, cfg, c, gpu="cpu")
    assert est.calibration.source == "measured" and est.calibration.sample_ids == [sample.id]
    assert est.tokens.trained == pytest.approx(trained, rel=0.03)
    assert est.tokens.trained / est.train_seconds == pytest.approx(
        sample.tokens_per_second, rel=0.03
    )


def test_samples_written_before_migration_0003_stay_one_process_without_flops_facts(
    blank_database_url,
):
    import sqlalchemy as sa

    from db import migrate
    from db.engine import make_engine

    engine = make_engine(blank_database_url)
    migrate.upgrade(engine, "0002_job_billed_usd")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO throughput_samples (hardware, method, model_params, seq_len, "
                "tokens_per_second, achieved_flops_per_s, created_at) "
                "VALUES ('cpu:x', 'lora', 1000, 64, 50.0, 1.0, '2026-11-30 10:00:00')"
            )
        )
    migrate.upgrade(engine)
    with read_session(engine) as s:
        (old,) = s.exec(select(ThroughputSample)).all()
    assert old.world_size == 1 and old.flops_facts is None
    migrate.downgrade(engine, "0002_job_billed_usd")  # and back
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("throughput_samples")}
    assert "world_size" not in columns and "flops_facts" not in columns


def test_a_recorded_sample_gives_one_devices_mfu_with_its_own_flops():
    """A 2-GPU QLoRA sample records one device's rate and the facts of its run: the MFU is
    that rate x the estimator's FLOPs for *that* run (its own context, not the estimated
    job's settings) / one GPU's peak, and the 2-GPU estimate of the same job is its
    measured time."""
    from providers.local.flops import FlopsFacts

    c = load_catalog(use_settings=False)
    shape = model_shape("meta-llama/Llama-3.1-8B")
    cfg = LocalTrainingConfig(
        method="qlora", seq_len=512, gradient_checkpointing=False, n_gpu=2, epochs=1
    )
    facts = FlopsFacts(shape, "qlora", shape.lora_params(16, ALL_LINEAR), False, 512.0)
    with write_session(get_engine()) as s:
        s.add(
            ThroughputSample(
                hardware="NVIDIA H100 80GB HBM3",
                method="qlora",
                model_params=shape.params,
                seq_len=512,
                tokens_per_second=1500.0,  # per device
                achieved_flops_per_s=1500.0 * facts.per_token(),
                world_size=2,
                flops_facts=facts.to_dict(),
            )
        )
    with read_session(get_engine()) as s:
        same = estimate_local_training(
            s, np.full(1000, 512, dtype=np.uint32), shape, cfg, c, gpu="h100"
        )
        other = replace(cfg, seq_len=2048, gradient_checkpointing=True)
        longer = estimate_local_training(
            s, np.full(1000, 2048, dtype=np.uint32), shape, other, c, gpu="h100"
        )
    overhead = c.default("qlora_dequant_overhead")
    assert same.calibration.mfu == pytest.approx(1500 * facts.per_token() * (1 + overhead) / 989e12)
    assert same.train_seconds == pytest.approx(512_000 / (2 * 1500.0))
    # Another job (longer rows, checkpointing): the same MFU, more FLOPs per token (the
    # sample's FLOPs are its own run's, not recomputed with the estimated job's settings).
    assert longer.calibration.mfu == pytest.approx(same.calibration.mfu)
    assert longer.flops_per_token > same.flops_per_token
