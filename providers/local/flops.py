"""Training FLOPs per token: the one formula the estimate, the worker's throughput sample,
the calibration and the GPU bench all use (no torch: the CLI imports it).

N counts the matmul parameters: the blocks' linear layers and the output head, not the
input embedding (a lookup, no multiply-adds). With L layers of width d and an average
attention context of s tokens:
- full fine-tuning: 6N + 12·L·d·s
- LoRA / QLoRA: 4N + 12·L·d·s + 6·N_T (frozen weights need activation gradients only;
  N_T the adapter's parameters)
- gradient checkpointing adds one forward: +2N + 4·L·d·s

Because a throughput sample records its `FlopsFacts`, calibration recomputes exactly the
FLOPs the estimator would have predicted for that run: tokens/s x FLOPs/token / peak is
then the MFU the estimator needs to give back the measured time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from providers.local.methods import ADAPTER_METHODS as ADAPTER_METHODS  # re-exported
from providers.local.model_shape import ModelShape


class FlopsShape(Protocol):
    """The parts of a model's shape the formula reads (`ModelShape` has them)."""

    @property
    def linear_params(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_hidden_layers(self) -> int: ...


def matmul_params(shape: FlopsShape) -> int:
    """N: the linear layers plus the output head (tied or not, the head multiplies)."""
    return shape.linear_params + shape.vocab_size * shape.hidden_size


def flops_per_token(
    shape: FlopsShape,
    *,
    method: str,
    trainable_params: int,
    gradient_checkpointing: bool,
    context: float,
) -> float:
    """Training FLOPs per token of ``shape`` trained by ``method`` (full | lora | qlora) at
    an average attention context of ``context`` tokens."""
    n = matmul_params(shape)
    attn = shape.num_hidden_layers * shape.hidden_size * context
    if method in ADAPTER_METHODS:
        flops = 4 * n + 12 * attn + 6 * trainable_params
    else:
        flops = 6 * n + 12 * attn
    if gradient_checkpointing:
        flops += 2 * n + 4 * attn
    return float(flops)


@dataclass(frozen=True)
class FlopsFacts:
    """Everything `flops_per_token` needs about one run, as the estimator counts it.

    Stored with each throughput sample (``ThroughputSample.flops_facts``) so calibration
    needs no guess about the run that produced it.
    """

    shape: ModelShape
    method: str
    """full | lora | qlora (what is trained; a DPO job records its tuning)."""
    trainable_params: int
    """N_T as the estimator counts it: the adapter for LoRA/QLoRA, every parameter for full."""
    gradient_checkpointing: bool
    context: float
    """The attention context s as the estimator defines it: without packing the mean over
    micro-batches of the padded length, with packing the packed length."""

    def per_token(self) -> float:
        return flops_per_token(
            self.shape,
            method=self.method,
            trainable_params=self.trainable_params,
            gradient_checkpointing=self.gradient_checkpointing,
            context=self.context,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopsFacts:
        """The facts a sample stored; raises KeyError / TypeError when they are incomplete."""
        shape_fields = {f.name for f in fields(ModelShape)}
        shape = ModelShape(**{k: v for k, v in data["shape"].items() if k in shape_fields})
        return cls(
            shape=shape,
            method=str(data["method"]),
            trainable_params=int(data["trainable_params"]),
            gradient_checkpointing=bool(data["gradient_checkpointing"]),
            context=float(data["context"]),
        )
