"""Which number formats a local run computes and stores in: one decision, from the
``bf16`` option, the device and the GPU's compute capability. No torch import: the CLI's
memory estimate and the worker's trainer read the same answer.

Why the capability and not ``torch.cuda.is_bf16_supported()``: that call also says yes on
GPUs that only emulate bf16 (T4, V100: compute capability below 8.0), where bf16 runs
several times slower than fp16. Native bf16 tensor cores start with Ampere (8.0).

- bf16 GPU (8.0+), ``bf16=auto|true``: bf16 autocast, frozen weights in bf16, TF32 on.
- older GPU, ``bf16=auto``; or any GPU with ``bf16=false``: fp16 autocast with a
  GradScaler, frozen weights in fp16 (TF32 still on where the GPU has it).
- CPU: fp32 throughout (bf16 autocast on a CPU is slower, not faster).
Trainable weights (LoRA adapters, full fine-tuning's master weights) stay fp32 always:
their updates are too small for a 16-bit format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


class PrecisionError(ValueError):
    """bf16 was asked for where the hardware has none; the message says what to set."""


@dataclass(frozen=True)
class Precision:
    mixed: str
    """Autocast format: bf16 | fp16 | no."""
    compute_dtype: str
    """What matmuls run in: bfloat16 | float16 | float32 (QLoRA's bnb compute dtype too)."""
    frozen_dtype: str
    """What the frozen base weights of a LoRA run are stored in."""
    tf32: bool
    """TF32 matmuls for fp32 work (Ampere and later)."""
    reason: str
    """One line for the job's plan event: what was chosen and why."""

    trainable_dtype: str = "float32"
    """LoRA adapters and full fine-tuning's master weights."""

    @property
    def bf16(self) -> bool:
        return self.mixed == "bf16"

    @property
    def fp16(self) -> bool:
        return self.mixed == "fp16"

    @property
    def frozen_bytes(self) -> int:
        return DTYPE_BYTES[self.frozen_dtype]

    @property
    def compute_bytes(self) -> int:
        """Bytes per activation (and per weight of a copy kept only for forward passes)."""
        return DTYPE_BYTES[self.compute_dtype]

    @property
    def trainable_bytes(self) -> int:
        return DTYPE_BYTES[self.trainable_dtype]

    def to_dict(self) -> dict[str, Any]:
        """What the job's plan event and the adapter's loading record hold."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Precision:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def _cap_text(capability: tuple[int, int] | None) -> str:
    return "unknown" if capability is None else f"{capability[0]}.{capability[1]}"


def choose_precision(
    setting: str,
    device: str,
    capability: tuple[int, int] | None,
    gpu_name: str = "the GPU",
) -> Precision:
    """The precision for option ``bf16=setting`` (auto | true | false) on ``device``
    (cuda | cpu) whose compute capability is ``capability`` (None: unknown; bf16 is then
    only used when asked for explicitly).

    Raises:
        PrecisionError: ``bf16=true`` on a CPU or on a GPU without native bf16.
    """
    setting = str(setting).lower()
    if device != "cuda":
        if setting == "true":
            raise PrecisionError(
                "bf16=true needs a CUDA GPU with native bf16; the CPU trains in fp32 "
                "(set bf16=auto or false)"
            )
        return Precision("no", "float32", "float32", False, "fp32 on the CPU")
    native = capability is not None and capability >= (8, 0)
    tf32 = native
    if setting == "true" and capability is not None and not native:
        raise PrecisionError(
            f"bf16=true: {gpu_name} (compute capability {_cap_text(capability)}) has no "
            "native bf16 (only emulated, several times slower); set bf16=auto (fp16 "
            "mixed precision) or false"
        )
    if setting == "true" or (setting == "auto" and native):
        return Precision(
            "bf16",
            "bfloat16",
            "bfloat16",
            tf32,
            f"bf16 mixed precision ({gpu_name}, compute capability {_cap_text(capability)})",
        )
    why = (
        "bf16=false"
        if setting == "false"
        else f"{gpu_name} (compute capability {_cap_text(capability)}) has no native bf16"
    )
    return Precision(
        "fp16", "float16", "float16", tf32, f"fp16 mixed precision with loss scaling: {why}"
    )


NATIVE_BF16 = (8, 0)
"""Compute capability from which a GPU has bf16 tensor cores (Ampere)."""


def nominal_precision(device: str) -> Precision:
    """What ``bf16=auto`` picks on a bf16 GPU (every GPU of ftm's price catalog) or the
    CPU: the precision estimates for catalog hardware assume."""
    return choose_precision("auto", device, NATIVE_BF16 if device == "cuda" else None)


class _GpuFacts(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def capability(self) -> tuple[int, int] | None: ...


def precision_for_gpus(setting: str, gpus: Sequence[_GpuFacts]) -> Precision:
    """The precision a job picks on ``gpus`` (the devices it trains on, as the hardware
    seam reports them; empty: the CPU). Every rank must agree, so the least capable GPU
    decides.

    Raises:
        PrecisionError: as `choose_precision`.
    """
    if not gpus:
        return choose_precision(setting, "cpu", None)
    known = [g for g in gpus if g.capability is not None]
    weakest = min(known, key=lambda g: g.capability or (0, 0)) if known else gpus[0]
    return choose_precision(setting, "cuda", weakest.capability, weakest.name)
