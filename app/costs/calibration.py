"""Measured throughput of finished local jobs replaces the default MFU for their hardware.

Each `ThroughputSample` (written by the local provider when a job ends) says how many
tokens per second one device sustained on ``hardware``, counting tokens and time as the
estimate does (`providers.local.throughput`). Its ``flops_facts`` (model shape, method,
trainable parameters, checkpointing, context) give back exactly the FLOPs per token the
estimator computes for that run (`providers.local.flops`, the one formula), so the MFU a
sample implies makes the estimate of the same job its measured time.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field, replace

from sqlmodel import Session, select

from app.costs.catalog import GPU, Catalog
from app.costs.local_memory import METHODS, LocalTrainingConfig
from app.costs.local_time import flops_per_token
from app.costs.model_shapes import ModelShape
from db.models import ThroughputSample
from providers.local.flops import FlopsFacts

# Device names (torch.cuda.get_device_name, nvidia-smi) -> catalog keys. Order matters:
# "l40s" before "l4", the NVL/PCIe variants (other peaks) before their SXM family name.
# Each key's catalog peak must be `providers.local.hardware.peak_flops` of the names it
# takes (tests/test_gpu_bench.py pins them equal); an unlisted variant keeps its own key.
_DEVICE_PATTERNS = [
    (r"h200 nvl", "h200-nvl"),
    (r"h200", "h200"),
    (r"h100.*pcie", "h100-pcie"),
    (r"h100 nvl", "h100-nvl"),
    (r"h100", "h100"),
    (r"a100.*80|80.*a100", "a100-80gb"),
    (r"l40s", "l40s"),
    (r"\bl4\b", "l4"),
    (r"4090", "rtx-4090"),
    (r"^cpu", "cpu"),
]
MAX_SAMPLES = 5


def hardware_key(name: str, catalog: Catalog | None = None) -> str:
    """The catalog key for a hardware name (a key already, or a device name)."""
    lowered = name.strip().lower()
    if catalog is not None and lowered in catalog.gpus:
        return lowered
    for pattern, key in _DEVICE_PATTERNS:
        if re.search(pattern, lowered):
            return key
    return lowered


@dataclass(frozen=True)
class Calibration:
    hardware: str
    mfu: float
    """Effective MFU of the training loop (QLoRA's dequantization overhead taken out)."""
    source: str
    """"default" (catalog defaults.mfu) or "measured"."""
    sample_ids: list[int] = field(default_factory=list)
    measured_tokens_per_second: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(
    session: Session | None,
    gpu: GPU,
    shape: ModelShape,
    cfg: LocalTrainingConfig,
    context: float,
    catalog: Catalog,
) -> Calibration:
    """The MFU to use on ``gpu``: the median over the newest samples on that hardware
    (the same method preferred), else the catalog default."""
    default = Calibration(gpu.key, catalog.default("mfu"), "default")
    if session is None:
        return default
    rows = session.exec(
        select(ThroughputSample).order_by(ThroughputSample.created_at.desc()).limit(200)
    ).all()
    mine = [r for r in rows if hardware_key(r.hardware, catalog) == gpu.key]
    same_method = [r for r in mine if r.method == cfg.method]
    chosen = (same_method or mine)[:MAX_SAMPLES]
    if not chosen:
        return default
    overhead = catalog.default("qlora_dequant_overhead")
    mfus = []
    for row in chosen:
        facts = _recorded_facts(row)
        if facts is not None:  # the estimator's own FLOPs for the sample's run
            method, fpt = facts.method, facts.per_token()
        else:
            method, fpt = _legacy_flops(row, shape, cfg, context)
        mfu = row.tokens_per_second * fpt / gpu.peak_flops
        if method == "qlora":
            mfu *= 1.0 + overhead  # the estimate adds the dequantization overhead back
        mfus.append(mfu)
    return Calibration(
        gpu.key,
        statistics.median(mfus),
        "measured",
        [r.id for r in chosen],
        [r.tokens_per_second for r in chosen],
    )


def _recorded_facts(row: ThroughputSample) -> FlopsFacts | None:
    if not row.flops_facts:
        return None
    try:
        return FlopsFacts.from_dict(row.flops_facts)
    except (KeyError, TypeError, ValueError):  # written by another version: not usable
        return None


def _legacy_flops(
    row: ThroughputSample, shape: ModelShape, cfg: LocalTrainingConfig, context: float
) -> tuple[str, float]:
    """(method, FLOPs per token) of a sample written before samples recorded their
    `FlopsFacts`: the estimated job's settings stand in for the ones not recorded."""
    method = row.method if row.method in METHODS else cfg.method
    sample_cfg = replace(cfg, method=method, seq_len=row.seq_len or cfg.seq_len)
    if _same_model(shape, row.model_params):
        return method, flops_per_token(shape, sample_cfg, min(context, sample_cfg.seq_len))
    # another model: its attention term is unknown; count the weights only
    n = row.model_params
    return method, (6 if method == "full" else 4) * n + (2 * n if cfg.gradient_checkpointing else 0)


def _same_model(shape: ModelShape, params: int) -> bool:
    return params > 0 and abs(shape.params - params) / params < 0.05
