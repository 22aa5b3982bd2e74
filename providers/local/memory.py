"""The training-memory estimate (published LoRA/QLoRA memory budgets, QLoRA paper): the one
formula behind `ftm estimate`, the fit table and the local provider's refusal of a job that
cannot fit. It lives here, in the layer that refuses, so the refusal and the estimate are
the same figure to the byte. No torch import.

M = weights + trainable state + activations + logits + overhead, per GPU, where overhead is
the runtime's own memory (the CUDA context) plus allocator fragmentation on the memory
that is allocated and freed every step (activations and logits). Sizes are whole bytes;
GB means 1e9 bytes, the unit GPU data sheets and the price catalog use.

It models what the local worker does, in the number formats `providers.local.precision`
chose: QLoRA loads NF4 weights with double quantization (the rest in the compute dtype),
LoRA frozen weights in the frozen dtype (bf16 or fp16 on a GPU, fp32 on a CPU), full
fine-tuning fp32 master weights under either autocast; activations and logits are in the
compute dtype; SDPA attention never stores the s x s scores; AdamW keeps fp32 states.
DPO runs the chosen and the rejected answer of each pair together (twice the rows), and a
full DPO run keeps a frozen reference copy of the model in the compute dtype (LoRA DPO
disables the adapters instead: no copy). Several GPUs run data parallel (`accelerate
launch --multi_gpu`), each holding a whole replica plus DDP's bucketed copy of the
trainable gradients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from providers.local.model_shape import ALL_LINEAR, ModelShape
from providers.local.precision import Precision, nominal_precision

GB = 1e9
METHODS = ("full", "lora", "qlora", "dora", "ia3", "prefix")
"""Ordered heaviest first among full / lora / qlora (`changes_that_fit` suggests a lighter
one); dora, ia3 and prefix are frozen-base adapters like LoRA."""
OPTIMIZERS = ("adamw", "adamw-8bit")
DEVICES = ("cuda", "cpu")

CUDA_CONTEXT_BYTES = 0.5e9
"""CUDA context + cuBLAS workspace (0.3-2 GiB on current drivers)."""
CPU_RUNTIME_BYTES = 0.3e9
"""torch's own allocations when training on the CPU."""
FRAGMENTATION = 0.20
"""Allocator fragmentation on activations and logits (about 20% in PyTorch's caching allocator)."""


def gb(n_bytes: float) -> str:
    """``50.4 GB``: how every face writes a memory figure (the refusal, `ftm estimate`, the
    launch wizard)."""
    return f"{n_bytes / GB:.1f} GB"


@dataclass(frozen=True)
class TrainingSetup:
    """What the memory of a run depends on (everything else, such as epochs or the GPU
    count, does not change the bytes per GPU)."""

    method: str = "qlora"
    """full | lora | qlora | dora | ia3 | prefix."""
    seq_len: int = 2048
    """The longest sequence a batch can hold (longer examples are truncated)."""
    micro_batch: int = 1
    rank: int = 16
    targets: tuple[str, ...] = ALL_LINEAR
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
    device: str = "cuda"
    """cuda | cpu: on the CPU there is no CUDA context."""
    precision: Precision | None = None
    """The number formats the run uses (`providers.local.precision`); None: what
    ``bf16=auto`` picks on a bf16 GPU or the CPU (`nominal_precision`)."""
    dpo: bool = False
    """Preference training: chosen and rejected rows run together."""
    world_size: int = 1
    """Data-parallel processes (GPUs); more than one adds DDP's gradient buckets."""
    num_virtual_tokens: int = 20
    """Prefix tuning's trained key/value tokens per layer."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; known: {', '.join(DEVICES)}")
        for name in ("rank", "seq_len", "micro_batch", "world_size", "num_virtual_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")

    @property
    def is_lora(self) -> bool:
        """A frozen base with a small trained adapter (LoRA, QLoRA, DoRA, IA3, prefix):
        the adapter's fp32 state is what is trained, not the base."""
        return self.method != "full"

    @property
    def number_formats(self) -> Precision:
        return self.precision or nominal_precision(self.device)

    @property
    def has_reference_model(self) -> bool:
        """Full DPO keeps a frozen reference model; LoRA DPO disables its adapters."""
        return self.dpo and self.method == "full"


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes per GPU, by part."""

    weights: int
    trainable_state: int
    activations: int
    logits: int
    overhead: int
    trainable_params: int
    seq_len: int
    micro_batch: int
    reference_model: int = 0
    """Full DPO's frozen reference copy of the weights."""
    ddp_buckets: int = 0
    """DDP's bucketed copy of the trainable gradients (more than one GPU)."""

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.trainable_state
            + self.activations
            + self.logits
            + self.overhead
            + self.reference_model
            + self.ddp_buckets
        )

    def describe(self) -> str:
        """The one way the estimate is written, in the CLI, the TUI and the refusal."""
        parts = ", ".join(
            f"{label} {getattr(self, name) / GB:.1f}"
            for label, name in (
                ("weights", "weights"),
                ("state", "trainable_state"),
                ("activations", "activations"),
                ("logits", "logits"),
                ("overhead", "overhead"),
                ("reference model", "reference_model"),
                ("DDP buckets", "ddp_buckets"),
            )
            if getattr(self, name) or name not in ("reference_model", "ddp_buckets")
        )
        return f"{gb(self.total)} ({parts} GB)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "total": self.total,
            "total_gb": round(self.total / GB, 2),
            "text": self.describe(),
        }


def method_params(
    shape: ModelShape,
    method: str,
    rank: int = 16,
    targets: tuple[str, ...] = ALL_LINEAR,
    num_virtual_tokens: int = 20,
) -> int:
    """The parameters ``method`` trains on ``shape``, as PEFT creates them:
    LoRA/QLoRA r x (d_in + d_out) per targeted projection; DoRA that plus a magnitude
    vector (d_out) per projection; IA3 one scaling vector per layer on k_proj and v_proj
    (their outputs) and down_proj (its input, the feed-forward width); prefix tuning
    num_virtual_tokens x layers x 2 (key and value) x the KV width (kv heads x head dim,
    PEFT's size under grouped-query attention); full, every parameter."""
    L = shape.num_hidden_layers
    kv = shape.num_key_value_heads * shape.head_dim
    if method in ("lora", "qlora"):
        return shape.lora_params(rank, targets)
    if method == "dora":
        magnitudes = sum(shape.projection(t)[1] for t in targets) * L
        return shape.lora_params(rank, targets) + magnitudes
    if method == "ia3":
        return (2 * kv + shape.intermediate_size) * L
    if method == "prefix":
        return num_virtual_tokens * L * 2 * kv
    return shape.params


def trainable_params(shape: ModelShape, setup: TrainingSetup) -> int:
    return method_params(shape, setup.method, setup.rank, setup.targets, setup.num_virtual_tokens)


def estimate_training_memory(shape: ModelShape, setup: TrainingSetup) -> MemoryEstimate:
    """Peak memory per GPU for training ``shape`` as ``setup`` says."""
    n, b, s = shape.params, setup.micro_batch, setup.seq_len
    d, L = shape.hidden_size, shape.num_hidden_layers
    n_t = trainable_params(shape, setup)
    adam = 8 if setup.optimizer == "adamw" else 2  # Adam m, v: fp32, or 1 byte each
    formats = setup.number_formats
    act = formats.compute_bytes  # bytes per activation: 2 under autocast, 4 in fp32

    if setup.method == "qlora":
        per_param = 0.5 + (0.016 if setup.double_quant else 0.0625)
        # the embeddings and the output head stay unquantized, in the compute dtype
        weights = shape.linear_params * per_param + formats.compute_bytes * shape.embedding_params
    elif setup.method == "full":
        # fp32 master weights (under bf16 or fp16 autocast alike), or pure 16-bit.
        weights = (formats.trainable_bytes if setup.mixed_precision else 2.0) * n
    else:  # the frozen LoRA base, in the frozen dtype
        weights = formats.frozen_bytes * n

    if setup.is_lora:
        state = n_t * (4 + 4 + adam)  # fp32 adapter weight + grad + Adam m, v
    elif setup.mixed_precision:
        state = n * (4 + adam)  # fp32 grad + Adam m, v (the fp32 weights are counted above)
    else:
        # bf16 grad + Adam m, v in bf16 (or 8-bit: 1 byte each)
        state = n * (2 + (4 if setup.optimizer == "adamw" else 2))

    # DPO runs each pair's chosen and rejected answer in one batch: twice the rows.
    rows = 2 * b if setup.dpo else b
    # Per-layer activations (Korthikanti et al., bf16): rows·s·d·(34 + 5·heads·s/d),
    # scaled to the compute dtype; flash attention drops the s x s scores term.
    attn_scores = 0 if setup.flash_attention else 5 * shape.num_attention_heads * s / d
    one_layer = rows * s * d * (34 + attn_scores) * act / 2
    # Prefix tuning never checkpoints (its KV-cache prefix does not survive recomputation:
    # `options.resolve_hyperparameters`), so its estimate keeps every layer's activations.
    if setup.gradient_checkpointing and setup.method != "prefix":
        activations = act * rows * s * d * L + one_layer  # layer inputs + one layer recomputed
    else:
        activations = one_layer * L
    # Logits in the compute dtype, their fp32 upcast and the fp32 gradient of the loss
    # (10 bytes each under autocast, 12 in fp32).
    logits = 0.0 if setup.chunked_loss else rows * s * shape.vocab_size * (act + 8.0)
    runtime = CUDA_CONTEXT_BYTES if setup.device == "cuda" else CPU_RUNTIME_BYTES
    overhead = runtime + FRAGMENTATION * (activations + logits)
    # Full DPO's reference model: forward passes only, so in the compute dtype.
    reference = formats.compute_bytes * n if setup.has_reference_model else 0
    # DDP all-reduces gradients through buckets that copy them: trainable x grad bytes.
    grad_bytes = 4 if (setup.is_lora or setup.mixed_precision) else 2
    buckets = n_t * grad_bytes if setup.world_size > 1 else 0
    return MemoryEstimate(
        weights=round(weights),
        trainable_state=round(state),
        activations=round(activations),
        logits=round(logits),
        overhead=round(overhead),
        trainable_params=n_t,
        seq_len=s,
        micro_batch=b,
        reference_model=round(reference),
        ddp_buckets=round(buckets),
    )


def changes_that_fit(
    shape: ModelShape, setup: TrainingSetup, available: float
) -> list[dict[str, Any]]:
    """Single changes to ``setup`` after which the estimate fits in ``available`` bytes,
    each verified with the estimate itself, so an error can suggest only fixes that work.

    Each change is a dict of `TrainingSetup` fields: ``{"method": "qlora"}``,
    ``{"gradient_checkpointing": True}``, the largest ``micro_batch`` or ``seq_len`` (a
    power of two, at least 128) that fits.
    """

    def fits(**change: Any) -> bool:
        return estimate_training_memory(shape, replace(setup, **change)).total <= available

    # Only suggested where it is fast: QLoRA's 4-bit kernels are CUDA kernels, so on the
    # CPU the lighter method suggested is LoRA (as the estimate's fit table treats it).
    lighter = "qlora" if setup.device == "cuda" else "lora"
    candidates: list[dict[str, Any]] = (
        [{"method": lighter}]
        if setup.method == "full" or (setup.method == "lora" and lighter == "qlora")
        else []
    )
    if not setup.gradient_checkpointing:
        candidates.append({"gradient_checkpointing": True})
    found = [change for change in candidates if fits(**change)]
    batch = setup.micro_batch // 2
    while batch >= 1 and not fits(micro_batch=batch):
        batch //= 2
    if batch >= 1:
        found.append({"micro_batch": batch})
    # The largest power of two below seq_len that fits, down to 128 tokens.
    seq = 1 << ((setup.seq_len - 1).bit_length() - 1) if setup.seq_len > 128 else 0
    while seq >= 128 and not fits(seq_len=seq):
        seq //= 2
    if seq >= 128:
        found.append({"seq_len": seq})
    return found
