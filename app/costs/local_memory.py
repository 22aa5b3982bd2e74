"""GPU memory of a local fine-tuning run, per GPU.

M = weights + trainable state + activations + logits + overhead, where overhead is the
CUDA context plus allocator fragmentation on the memory that is allocated and freed every
step (activations and logits). Sizes are in bytes; GB below means 1e9 bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.costs.errors import CostError
from app.costs.model_shapes import ModelShape, resolve_targets

METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw-8bit")


@dataclass(frozen=True)
class LocalTrainingConfig:
    """How a local run trains: everything the memory and time estimates depend on."""

    method: str = "qlora"
    """full | lora | qlora."""
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
    """Full fine-tuning keeps fp32 master weights (16 bytes of state per parameter);
    False means pure bf16 (6 bytes)."""
    double_quant: bool = True
    """QLoRA's double quantization of the NF4 scales."""
    flash_attention: bool = True
    """SDPA / flash attention: the s x s attention scores are never stored."""
    chunked_loss: bool = False
    """Chunked cross-entropy: the full-vocabulary logits are never materialized."""
    n_gpu: int = 1
    """GPUs; with more than one, full fine-tuning shards weights and state (FSDP)."""
    epochs: int = 3

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CostError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.optimizer not in OPTIMIZERS:
            raise CostError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        for name in ("rank", "seq_len", "micro_batch", "n_gpu", "epochs"):
            if getattr(self, name) < 1:
                raise CostError(f"{name} must be at least 1 (got {getattr(self, name)})")

    @property
    def is_lora(self) -> bool:
        return self.method in ("lora", "qlora")

    def to_dict(self) -> dict:
        return asdict(self) | {"targets": list(self.targets)}


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float
    trainable_state: float
    activations: float
    logits: float
    overhead: float
    trainable_params: int
    seq_len: int
    """The sequence length the peak was computed for (the longest a batch can hold)."""

    @property
    def total(self) -> float:
        return self.weights + self.trainable_state + self.activations + self.logits + self.overhead

    def to_dict(self) -> dict:
        return asdict(self) | {"total": self.total, "total_gb": round(self.total / 1e9, 2)}


def trainable_params(shape: ModelShape, cfg: LocalTrainingConfig) -> int:
    return shape.lora_params(cfg.rank, cfg.targets) if cfg.is_lora else shape.params


def estimate_memory(shape: ModelShape, cfg: LocalTrainingConfig, *, longest_example: int | None = None,
                    cuda_context_gb: float = 0.5, fragmentation: float = 0.20) -> MemoryEstimate:
    """Peak memory per GPU for training ``shape`` as ``cfg`` says.

    ``longest_example`` (tokens) caps the sequence length of unpacked batches: without
    packing a batch is only as long as its longest example.
    """
    n, b, d, L = shape.params, cfg.micro_batch, shape.hidden_size, shape.num_hidden_layers
    s = cfg.seq_len if cfg.packing or not longest_example else min(cfg.seq_len, longest_example)
    n_t = trainable_params(shape, cfg)

    if cfg.method == "qlora":
        per_param = 0.5 + (0.016 if cfg.double_quant else 0.0625)
        weights = shape.linear_params * per_param + 2 * shape.embedding_params
    else:
        weights = 2.0 * n

    if cfg.is_lora:
        # fp32 weight + grad + Adam m, v; 8-bit Adam keeps m, v in 1 byte each.
        state = n_t * (16 if cfg.optimizer == "adamw" else 10)
    elif cfg.mixed_precision:
        # fp32 master copy + fp32 grad + Adam m, v, beside the bf16 working weights.
        state = n * (16 if cfg.optimizer == "adamw" else 10)
    else:
        state = n * (6 if cfg.optimizer == "adamw" else 4)  # bf16 grad + bf16 (or 8-bit) m, v
    if cfg.method == "full" and cfg.n_gpu > 1:  # FSDP shards weights and state
        weights, state = weights / cfg.n_gpu, state / cfg.n_gpu

    # Per-layer activations in bf16 (Korthikanti et al.): b·s·d·(34 + 5·heads·s/d);
    # flash attention drops the s x s scores term.
    attn_scores = 0 if cfg.flash_attention else 5 * shape.num_attention_heads * s / d
    one_layer = b * s * d * (34 + attn_scores)
    if cfg.gradient_checkpointing:
        activations = 2 * b * s * d * L + one_layer  # layer inputs + one layer recomputed
    else:
        activations = one_layer * L
    # bf16 logits, their fp32 upcast and the fp32 gradient of the loss: ~10 bytes each.
    logits = 0.0 if cfg.chunked_loss else b * s * shape.vocab_size * 10.0
    overhead = cuda_context_gb * 1e9 + fragmentation * (activations + logits)
    return MemoryEstimate(weights=weights, trainable_state=state, activations=activations,
                          logits=logits, overhead=overhead, trainable_params=n_t, seq_len=s)
