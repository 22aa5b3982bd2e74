"""Local training estimate: memory per GPU, which GPUs it fits, time and cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sqlmodel import Session

from app.costs.calibration import Calibration, calibrate
from app.costs.catalog import GPU, Catalog, no_priced_gpu_message
from app.costs.errors import CostError
from app.costs.local_memory import (
    LocalTrainingConfig,
    MemoryEstimate,
    estimate_memory,
    memory_setup,
)
from app.costs.local_time import TrainingTokens, flops_per_token, training_seconds, training_tokens
from app.costs.model_shapes import ModelShape
from providers.local.memory import GB, changes_that_fit

# How `ftm estimate` spells each change of the memory estimator's setup.
_FLAGS = {
    "method": "--method {}",
    "gradient_checkpointing": "--checkpointing",
    "micro_batch": "--batch {}",
    "seq_len": "--seq-len {}",
}


def _priced(gpu: GPU, cloud: str | None) -> bool:
    """Whether ``gpu`` has a price (in ``cloud`` when one is asked for)."""
    if cloud is None:
        return bool(gpu.prices or gpu.owned)
    return any(p.cloud == cloud for p in gpu.prices)


def device_of(gpu: GPU) -> str:
    """The memory estimator's device for a catalog entry: the CPU, or a CUDA GPU."""
    return "cpu" if gpu.key == "cpu" else "cuda"


def fixes_that_fit(shape: ModelShape, cfg: LocalTrainingConfig, gpu: GPU) -> str:
    """The `ftm estimate` flags after which the run fits on ``gpu``, each checked with the
    estimate itself ("" when no single change does)."""
    changes = changes_that_fit(shape, memory_setup(cfg, device=device_of(gpu)), gpu.memory_bytes)
    return ", ".join(_FLAGS[k].format(v) for c in changes for k, v in c.items())


@dataclass(frozen=True)
class GpuFit:
    gpu: str
    memory_gb: float
    fits: bool
    hours: float | None = None
    usd_per_hour: float | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class LocalTrainingEstimate:
    model: str
    shape: dict
    config: dict
    tokens: TrainingTokens
    tokenizer_note: str
    flops_per_token: float
    memory: MemoryEstimate
    gpu: str
    gpu_name: str
    n_gpu: int
    calibration: Calibration
    train_seconds: float
    overhead_seconds: float
    usd_per_hour: float
    price_cloud: str
    price_source: str
    price_as_of: str
    cost_usd: float
    fits: list[GpuFit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return (self.train_seconds + self.overhead_seconds) / 3600

    def to_dict(self) -> dict:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        d["hours"] = self.hours
        return d


def _time_and_cost(session, shape, cfg, tokens, fpt, gpu: GPU, catalog: Catalog, cloud):
    cal = calibrate(session, gpu, shape, cfg, tokens.mean_context, catalog)
    overhead = catalog.default("qlora_dequant_overhead") if cfg.method == "qlora" else 0.0
    seconds = training_seconds(
        tokens.trained,
        fpt,
        peak_flops=gpu.peak_flops,
        mfu=cal.mfu,
        n_gpu=cfg.n_gpu,
        dequant_overhead=overhead,
    )
    fixed = catalog.default("fixed_overhead_s")
    price = catalog.hourly_price(gpu, cloud)
    cost = (seconds + fixed) / 3600 * price.usd_per_hour * cfg.n_gpu
    return cal, seconds, fixed, price, cost


def estimate_local_training(
    session: Session | None,
    counts: np.ndarray,
    shape: ModelShape,
    cfg: LocalTrainingConfig,
    catalog: Catalog,
    *,
    gpu: str | None = None,
    cloud: str | None = None,
    tokenizer_note: str = "",
) -> LocalTrainingEstimate:
    """Estimate a local run. Without ``gpu``, the cheapest catalog GPU it fits on."""
    tokens = training_tokens(counts, cfg)
    fpt = flops_per_token(shape, cfg, tokens.mean_context)
    memory = {device: estimate_memory(shape, cfg, device=device) for device in ("cuda", "cpu")}
    fits: list[GpuFit] = []
    costed: dict[str, tuple] = {}
    for key, g in catalog.gpus.items():
        # QLoRA's 4-bit kernels (bitsandbytes) need CUDA: no CPU.
        ok = memory[device_of(g)].total <= g.memory_bytes and not (
            key == "cpu" and cfg.method == "qlora"
        )
        if ok and _priced(g, cloud):
            costed[key] = _time_and_cost(session, shape, cfg, tokens, fpt, g, catalog, cloud)
            _, s, fixed, price, cost = costed[key]
            fits.append(
                GpuFit(key, g.memory_gb, True, (s + fixed) / 3600, price.usd_per_hour, cost)
            )
        else:
            fits.append(GpuFit(key, g.memory_gb, ok))
    warnings = []
    if gpu is None and costed:
        # The CPU is only chosen when asked for: it is cheap per hour, not per result.
        accelerators = [k for k in costed if k != "cpu"] or list(costed)
        chosen = catalog.gpu(min(accelerators, key=lambda k: costed[k][4]))
    elif gpu is None:
        # Nothing holds it: priced on the largest priced GPU, with what would make it fit.
        # (Several GPUs run data parallel, each with a whole replica: more do not help.)
        priced = [g for g in catalog.gpus.values() if g.key != "cpu" and _priced(g, cloud)]
        if not priced:
            raise CostError(no_priced_gpu_message(catalog, cloud))
        chosen = max(priced, key=lambda g: (g.memory_bytes, -catalog.hourly_price(g).usd_per_hour))
        fixes = fixes_that_fit(shape, cfg, chosen)
        warnings.append(
            f"needs {memory['cuda'].total / GB:.1f} GB per GPU, more than any catalog GPU has "
            f"(the largest, {chosen.key}, has {chosen.memory_gb:g} GB): it will not fit; "
            + (
                f"it fits with {fixes}"
                if fixes
                else "no single change of method, batch or sequence length makes it fit"
            )
        )
    else:
        chosen = catalog.gpu(gpu)
        if chosen.key == "cpu" and cfg.method == "qlora":
            warnings.append("QLoRA's 4-bit kernels need a CUDA GPU: this will not run on a CPU")
        need = memory[device_of(chosen)].total
        if need > chosen.memory_bytes:
            fixes = fixes_that_fit(shape, cfg, chosen)
            warnings.append(
                f"needs {need / GB:.1f} GB per GPU; {chosen.key} has "
                f"{chosen.memory_gb:g} GB: it will not fit"
                + (f"; it fits with {fixes}" if fixes else "")
            )
    cal, seconds, fixed, price, cost = (
        costed[chosen.key]
        if chosen.key in costed
        else _time_and_cost(session, shape, cfg, tokens, fpt, chosen, catalog, cloud)
    )
    return LocalTrainingEstimate(
        model=shape.name,
        shape=shape.to_dict(),
        config=cfg.to_dict(),
        tokens=tokens,
        tokenizer_note=tokenizer_note,
        flops_per_token=fpt,
        memory=memory[device_of(chosen)],
        gpu=chosen.key,
        gpu_name=chosen.name,
        n_gpu=cfg.n_gpu,
        calibration=cal,
        train_seconds=seconds,
        overhead_seconds=fixed,
        usd_per_hour=price.usd_per_hour,
        price_cloud=price.cloud,
        price_source=price.source.text,
        price_as_of=price.source.as_of.isoformat(),
        cost_usd=cost,
        fits=fits,
        warnings=warnings,
    )
