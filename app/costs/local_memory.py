"""How a local run trains (`LocalTrainingConfig`) and its memory per GPU.

The memory formula itself is `providers.local.memory.estimate_training_memory`, the one the
local provider refuses jobs with, so `ftm estimate`, the fit table and the refusal give
the same bytes. This module only turns a training config into that estimator's setup.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.costs.errors import CostError
from app.costs.model_shapes import ModelShape, resolve_targets
from providers.local.memory import METHODS, OPTIMIZERS, MemoryEstimate, TrainingSetup
from providers.local.memory import estimate_training_memory as _estimate
from providers.local.memory import trainable_params as _trainable_params

__all__ = [
    "METHODS",
    "OPTIMIZERS",
    "LocalTrainingConfig",
    "MemoryEstimate",
    "estimate_memory",
    "memory_setup",
    "trainable_params",
]


@dataclass(frozen=True)
class LocalTrainingConfig:
    """How a local run trains: everything the memory and time estimates depend on."""

    method: str = "qlora"
    """full | lora | qlora | dora | ia3 | prefix."""
    rank: int = 16
    targets: tuple[str, ...] = field(default_factory=lambda: resolve_targets(None))
    """LoRA target modules (default all linear projections)."""
    seq_len: int = 2048
    """Maximum sequence length; longer examples are truncated."""
    micro_batch: int = 1
    packing: bool = False
    gradient_checkpointing: bool = True
    optimizer: str = "adamw"
    """adamw (fp32 states) | adamw-8bit."""
    mixed_precision: bool = True
    """Full fine-tuning keeps fp32 master weights (16 bytes per parameter with the fp32
    gradient and Adam states); False means pure bf16 (8 bytes)."""
    double_quant: bool = True
    """QLoRA's double quantization of the NF4 scales."""
    flash_attention: bool = True
    """SDPA / flash attention: the s x s attention scores are never stored."""
    chunked_loss: bool = False
    """Chunked cross-entropy: the full-vocabulary logits are never materialized."""
    n_gpu: int = 1
    """GPUs, data parallel (each holds a whole replica, plus DDP's gradient buckets when
    there is more than one): they divide the time."""
    epochs: int = 3
    dpo: bool = False
    """Preference training (DPO) with ``method`` as its tuning: twice the rows, and a
    reference model for full tuning."""
    num_virtual_tokens: int = 20
    """Prefix tuning's trained key/value tokens per layer."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CostError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.optimizer not in OPTIMIZERS:
            raise CostError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        for name in ("rank", "seq_len", "micro_batch", "n_gpu", "epochs", "num_virtual_tokens"):
            if getattr(self, name) < 1:
                raise CostError(f"{name} must be at least 1 (got {getattr(self, name)})")

    @property
    def is_lora(self) -> bool:
        """A frozen base with a trained adapter (every method but full)."""
        return self.method != "full"

    def to_dict(self) -> dict:
        return asdict(self) | {"targets": list(self.targets)}


def memory_setup(cfg: LocalTrainingConfig, *, device: str = "cuda") -> TrainingSetup:
    """The memory estimator's view of ``cfg`` on ``device`` (cuda | cpu).

    The sequence length is the configured maximum, the longest a batch can reach: the
    provider's refusal cannot see the tokenized data, and the two must agree. The number
    formats are what ``bf16=auto`` picks on ``device`` (catalog GPUs all have bf16; the
    CPU trains in fp32).
    """
    return TrainingSetup(
        method=cfg.method,
        seq_len=cfg.seq_len,
        micro_batch=cfg.micro_batch,
        rank=cfg.rank,
        targets=cfg.targets,
        gradient_checkpointing=cfg.gradient_checkpointing,
        optimizer=cfg.optimizer,
        mixed_precision=cfg.mixed_precision,
        double_quant=cfg.double_quant,
        flash_attention=cfg.flash_attention,
        chunked_loss=cfg.chunked_loss,
        device=device,
        dpo=cfg.dpo,
        world_size=cfg.n_gpu,
        num_virtual_tokens=cfg.num_virtual_tokens,
    )


def trainable_params(shape: ModelShape, cfg: LocalTrainingConfig) -> int:
    return _trainable_params(shape, memory_setup(cfg))


def estimate_memory(
    shape: ModelShape, cfg: LocalTrainingConfig, *, device: str = "cuda"
) -> MemoryEstimate:
    """Peak memory per GPU (or of RAM, ``device="cpu"``) for training ``shape`` as ``cfg``
    says."""
    return _estimate(shape, memory_setup(cfg, device=device))
