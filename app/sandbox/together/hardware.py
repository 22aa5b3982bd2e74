"""The emulator's dedicated-endpoint hardware and its rate table (``GET /hardware``).

Together bills a dedicated endpoint per minute while it runs, idle or not, at a rate per
hardware configuration (GPU type x count). Its published rates live on its pricing page,
not in the API spec; the figures below are the emulator's own, anchored on the spec's one
example (``2x_nvidia_a100_80gb_sxm`` at 5.42 cents a minute) and scaled per GPU. They make
an endpoint's bill testable; they are not a quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.sandbox.errors import invalid


@dataclass(frozen=True)
class Hardware:
    id: str
    gpu_type: str
    gpu_link: str
    gpu_memory_gb: float
    gpu_count: int
    cents_per_minute: float


A100_CENTS_PER_GPU_MINUTE = 2.71  # half the spec's 2x A100 example
H100_CENTS_PER_GPU_MINUTE = 5.53

HARDWARE: dict[str, Hardware] = {
    hw.id: hw
    for hw in (
        Hardware("1x_nvidia_a100_80gb_sxm", "a100-80gb", "sxm", 80, 1, A100_CENTS_PER_GPU_MINUTE),
        Hardware(
            "2x_nvidia_a100_80gb_sxm", "a100-80gb", "sxm", 80, 2, 2 * A100_CENTS_PER_GPU_MINUTE
        ),
        Hardware("1x_nvidia_h100_80gb_sxm", "h100-80gb", "sxm", 80, 1, H100_CENTS_PER_GPU_MINUTE),
        Hardware(
            "2x_nvidia_h100_80gb_sxm", "h100-80gb", "sxm", 80, 2, 2 * H100_CENTS_PER_GPU_MINUTE
        ),
        Hardware(
            "8x_nvidia_h100_80gb_sxm", "h100-80gb", "sxm", 80, 8, 8 * H100_CENTS_PER_GPU_MINUTE
        ),
    )
}


def hardware(hardware_id: object) -> Hardware:
    """The configuration named ``hardware_id``, or the 400 naming the ones there are."""
    found = HARDWARE.get(hardware_id) if isinstance(hardware_id, str) else None
    if found is None:
        raise invalid(
            f"Unknown hardware {hardware_id!r}; use one of {', '.join(HARDWARE)} "
            "(GET /v1/hardware lists them with their prices).",
            param="hardware",
        )
    return found


def hardware_api(hw: Hardware, updated_at: str) -> dict[str, Any]:
    """One ``HardwareWithStatus``: every configuration is available in the emulator."""
    return {
        "object": "hardware",
        "id": hw.id,
        "pricing": {"cents_per_minute": hw.cents_per_minute},
        "specs": {
            "gpu_type": hw.gpu_type,
            "gpu_link": hw.gpu_link,
            "gpu_memory": hw.gpu_memory_gb,
            "gpu_count": hw.gpu_count,
        },
        "availability": {"status": "available"},
        "updated_at": updated_at,
    }
