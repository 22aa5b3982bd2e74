"""Training tokens, FLOPs per token and wall time of a local run.

FLOPs per trained token are `providers.local.flops` (N the matmul parameters: the linear
layers and the output head, not the input embedding lookup):
- full fine-tuning: 6N + 12·L·d·s
- LoRA / QLoRA: 4N + 12·L·d·s + 6·N_T (frozen weights need activation gradients only)
- gradient checkpointing adds one forward: +2N + 4·L·d·s
time = tokens x FLOPs per token / (n_gpu x peak x MFU), + the NF4 dequantization overhead
for QLoRA.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from app.costs.local_memory import LocalTrainingConfig, trainable_params
from app.costs.model_shapes import ModelShape
from providers.local.flops import flops_per_token as _flops_per_token
from providers.local.flops import matmul_params

__all__ = [
    "TrainingTokens",
    "flops_per_token",
    "matmul_params",
    "training_seconds",
    "training_tokens",
]


@dataclass(frozen=True)
class TrainingTokens:
    real: int
    """Tokens after truncation to the sequence length, per epoch."""
    padded: int
    """Tokens the model processes per epoch without packing (each micro-batch padded to
    its longest example), in the dataset's order."""
    trained: int
    """Tokens processed over all epochs: packed -> real, else padded."""
    mean_context: float
    """Average sequence length attention sees (the s of the attention term)."""
    longest: int

    def to_dict(self) -> dict:
        return asdict(self)


def training_tokens(counts: np.ndarray, cfg: LocalTrainingConfig) -> TrainingTokens:
    """Vectorized over the per-example token counts (uint32 array)."""
    t = np.minimum(counts.astype(np.int64), cfg.seq_len)
    real = int(t.sum())
    if t.size == 0:
        return TrainingTokens(0, 0, 0, 0.0, 0)
    b = cfg.micro_batch
    pad = (-t.size) % b
    batches = np.concatenate([t, np.zeros(pad, dtype=np.int64)]).reshape(-1, b)
    padded = int(batches.max(axis=1).sum() * b)
    if cfg.packing:
        trained, context = real * cfg.epochs, float(cfg.seq_len if real >= cfg.seq_len else real)
    else:
        trained, context = padded * cfg.epochs, float(batches.max(axis=1).mean())
    return TrainingTokens(
        real=real, padded=padded, trained=trained, mean_context=context, longest=int(t.max())
    )


def flops_per_token(shape: ModelShape, cfg: LocalTrainingConfig, context: float) -> float:
    """Training FLOPs per token at an average attention context of ``context`` tokens (the
    formula is `providers.local.flops`, the one the worker's samples are counted with)."""
    return _flops_per_token(
        shape,
        method=cfg.method,
        trainable_params=trainable_params(shape, cfg),
        gradient_checkpointing=cfg.gradient_checkpointing,
        context=context,
    )


def training_seconds(
    tokens: int,
    fpt: float,
    *,
    peak_flops: float,
    mfu: float,
    n_gpu: int,
    dequant_overhead: float = 0.0,
) -> float:
    """Wall time of the training loop (no load, saves or evaluation)."""
    return tokens * fpt / (n_gpu * peak_flops * mfu) * (1.0 + dequant_overhead)
