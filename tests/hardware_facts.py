"""Fake machines for the hardware seam (`providers.local.hardware.HARDWARE_FILE_ENV`).

`fake_gpus` writes a facts file of the given GPUs and points ``FTM_HARDWARE_FILE`` at it
(for this test and every worker it starts); the presets are real GPUs' nvidia-smi facts.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from providers.local.hardware import HARDWARE_FILE_ENV

# name, compute capability, total MiB (as nvidia-smi reports them)
PRESETS: dict[str, tuple[str, str, int]] = {
    "h100": ("NVIDIA H100 80GB HBM3", "9.0", 81559),
    "h100-pcie": ("NVIDIA H100 PCIe", "9.0", 81559),
    "a100": ("NVIDIA A100-SXM4-80GB", "8.0", 81920),
    "l4": ("NVIDIA L4", "8.9", 23034),
    "l40": ("NVIDIA L40", "8.9", 46068),
    "t4": ("Tesla T4", "7.5", 15360),
    "v100": ("Tesla V100-SXM2-16GB", "7.0", 16384),
}


def fake_uuid(kind: str, *parts: object) -> str:
    """A stable UUID whose first group differs between devices (as real ones do)."""
    return f"{kind}-{uuidlib.uuid5(uuidlib.NAMESPACE_OID, '/'.join(map(str, parts)))}"


def gpu_fact(preset: str, index: int, *, used_mib: int = 0, **extra: Any) -> dict[str, Any]:
    name, cap, total = PRESETS[preset]
    fact = dict(
        index=index,
        uuid=fake_uuid("GPU", index),
        name=name,
        pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
        compute_cap=cap,
        memory_total_mib=total,
        memory_used_mib=used_mib,
    )
    fact.update(extra)
    return fact


def mig_fact(
    gpu: dict[str, Any], device: int, profile: str, total_mib: int, *, used_mib: int = 0
) -> dict[str, Any]:
    """One MIG instance of ``gpu`` (GPU instance ``device + 1``, compute instance 0)."""
    return dict(
        uuid=fake_uuid("MIG", gpu["index"], device),
        profile=profile,
        device=device,
        gi=device + 1,
        ci=0,
        memory_total_mib=total_mib,
        memory_used_mib=used_mib,
    )


def write_facts(path: Path, facts: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"gpus": facts}, indent=1))
    return path


def fake_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, facts: list[dict[str, Any]]) -> Path:
    """Make ``facts`` the machine's GPUs for this test (and the workers it starts)."""
    path = write_facts(tmp_path / "gpus.json", facts)
    monkeypatch.setenv(HARDWARE_FILE_ENV, str(path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return path
