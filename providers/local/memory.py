"""A simple training-memory estimate, read from the
model's config.json, used to refuse jobs that cannot fit before they start.

Deliberately simple and on the generous side: it exists to stop a 70B full fine-tune on a
laptop, not to predict the allocator to the megabyte. No torch import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30


@dataclass(frozen=True)
class ModelShape:
    n_params: int
    n_linear: int
    n_embed: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int

    @classmethod
    def from_config(cls, cfg: dict) -> ModelShape:
        """Parameter counts of a Llama-like decoder from its config.json."""
        cfg = cfg.get("text_config", cfg)
        d = int(cfg["hidden_size"])
        L = int(cfg["num_hidden_layers"])
        V = int(cfg["vocab_size"])
        ff = int(cfg.get("intermediate_size") or 4 * d)
        heads = int(cfg.get("num_attention_heads") or max(1, d // 64))
        kv = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or d // heads)
        attn = d * heads * head_dim * 2 + d * kv * head_dim * 2
        mlp = 3 * d * ff
        n_linear = L * (attn + mlp)
        tied = bool(cfg.get("tie_word_embeddings", False))
        n_embed = V * d * (1 if tied else 2)
        return cls(n_linear + n_embed + L * 2 * d, n_linear, n_embed, L, d, ff, V, heads)

    def lora_params(self, r: int) -> int:
        """Trainable parameters of an all-linear LoRA of rank ``r``."""
        d, ff = self.hidden, self.intermediate
        per_layer = r * (4 * (d + d)) + r * (2 * (d + ff) + (ff + d))
        return self.layers * per_layer


def load_shape(model: str) -> ModelShape | None:
    """The shape of ``model`` when it is a local directory with a config.json."""
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        return ModelShape.from_config(json.loads(path.read_text()))
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float
    trainable_state: float
    activations: float
    logits: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.trainable_state + self.activations + self.logits + self.overhead

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {getattr(self, name) / GIB:.1f}"
            for name in ("weights", "trainable_state", "activations", "logits", "overhead")
        )
        return f"{self.total / GIB:.1f} GiB ({parts} GiB)"


def estimate_training_memory(
    shape: ModelShape, *, tuning: str, batch_size: int, seq_len: int, r: int = 16,
    gradient_checkpointing: bool = False, on_gpu: bool = True,
) -> MemoryEstimate:
    """Bytes per device for training ``shape`` with ``tuning`` (lora | qlora | full)."""
    if tuning == "qlora":
        weights = shape.n_linear * (0.5 + 0.016) + 2 * shape.n_embed
    elif tuning == "full":
        weights = 0.0  # the 16 bytes per parameter of the trainable state hold the weights
    else:
        weights = 2.0 * shape.n_params if on_gpu else 4.0 * shape.n_params
    trainable = 16.0 * (shape.n_params if tuning == "full" else shape.lora_params(r))
    b, s, d, L = batch_size, seq_len, shape.hidden, shape.layers
    if gradient_checkpointing:
        activations = 2.0 * b * s * d * L + b * s * d * (34 + 5 * shape.heads * s / d)
    else:
        activations = b * s * d * (34 + 5 * shape.heads * s / d) * L
    logits = b * s * shape.vocab * 10.0
    base = weights + trainable + activations + logits
    overhead = 0.2 * base + (1.0 * GIB if on_gpu else 0.3 * GIB)
    return MemoryEstimate(weights, trainable, activations, logits, overhead)
