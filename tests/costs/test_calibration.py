"""Measured throughput of finished local jobs replaces the default MFU for their hardware."""

from __future__ import annotations

import numpy as np
import pytest

from app.costs.calibration import hardware_key
from app.costs.catalog import load_catalog
from app.costs.local_memory import LocalTrainingConfig
from app.costs.local_training import estimate_local_training
from app.costs.model_shapes import model_shape
from app.database import get_engine
from db.engine import read_session, write_session
from db.models import ThroughputSample


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
