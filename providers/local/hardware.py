"""What this machine trains on, found without importing torch (the check runs in the CLI).

GPUs come from ``nvidia-smi`` (or, for tests and dry runs, from the facts file named by
``FTM_HARDWARE_FILE``: the one seam through which hardware is faked); the CPU from /proc.
Peak FLOP/s figures are the dense bf16 numbers of NVIDIA's data sheets (fp16 for GPUs
without bf16), used for MFU.

The facts file holds what nvidia-smi would report for the whole machine, before
``CUDA_VISIBLE_DEVICES`` is applied::

    {"gpus": [{"index": 0, "uuid": "GPU-4f...", "name": "NVIDIA H100 80GB HBM3",
               "pci_bus_id": "00000000:18:00.0", "compute_cap": "9.0",
               "memory_total_mib": 81559, "memory_used_mib": 0,
               "mig": [{"uuid": "MIG-9a...", "memory_total_mib": 9856,
                        "memory_used_mib": 0}]}]}

``mig`` is optional (absent: MIG off).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HARDWARE_FILE_ENV = "FTM_HARDWARE_FILE"
"""Names a JSON file of GPU facts that replaces nvidia-smi (tests, dry runs)."""

MIB = 2**20


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as a process will see it (a whole GPU or a MIG instance)."""

    name: str
    memory_bytes: int
    """Total memory of the device."""
    free_bytes: int | None = None
    """Memory not in use by any process right now (None: unknown)."""
    uuid: str = ""
    """GPU-... or MIG-...: what CUDA_VISIBLE_DEVICES names it by, whatever the order."""
    capability: tuple[int, int] | None = None
    """CUDA compute capability (8, 0) for an A100; None: unknown."""
    pci_bus_id: str = ""
    mig: bool = False

    @property
    def has_bf16(self) -> bool:
        """Native bf16 tensor cores (Ampere, 8.0, and later); older GPUs only emulate it."""
        return self.capability is not None and self.capability >= (8, 0)

    @property
    def has_tf32(self) -> bool:
        return self.capability is not None and self.capability >= (8, 0)


def _capability(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = str(text).strip().partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


def _facts_from_file(path: str) -> list[dict]:
    return list(json.loads(Path(path).read_text())["gpus"])


def _facts_from_nvidia_smi() -> list[dict]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=index,uuid,name,pci.bus_id,compute_cap,memory.total,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    facts = []
    for line in out.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 7:
            continue
        index, uuid, pci, cap, total, used = (
            cells[0],
            cells[1],
            cells[-4],
            cells[-3],
            cells[-2],
            cells[-1],
        )
        name = ",".join(cells[2:-4])  # a name could hold a comma
        try:
            facts.append(
                dict(
                    index=int(index),
                    uuid=uuid,
                    name=name,
                    pci_bus_id=pci,
                    compute_cap=cap,
                    memory_total_mib=int(float(total)),
                    memory_used_mib=int(float(used)),
                )
            )
        except ValueError:
            continue
    return facts


def machine_gpus() -> list[dict]:
    """Every GPU of the machine as raw facts (the facts file, else nvidia-smi)."""
    path = os.environ.get(HARDWARE_FILE_ENV)
    return _facts_from_file(path) if path else _facts_from_nvidia_smi()


def _as_gpu(fact: dict) -> Gpu:
    total = int(fact["memory_total_mib"]) * MIB
    used = fact.get("memory_used_mib")
    return Gpu(
        name=fact["name"],
        memory_bytes=total,
        free_bytes=None if used is None else max(0, total - int(used) * MIB),
        uuid=fact.get("uuid", ""),
        capability=_capability(fact.get("compute_cap")),
        pci_bus_id=fact.get("pci_bus_id", ""),
    )


def gpus() -> list[Gpu]:
    """CUDA GPUs visible to this process (empty when there is no driver)."""
    found = [_as_gpu(f) for f in machine_gpus()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        keep = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        found = [found[i] for i in keep if i < len(found)]
    return found


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def available_ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Dense tensor-core peak TFLOP/s in the format a run trains in (NVIDIA data sheets, no
# sparsity): bf16 from Ampere on; T4 and V100 have no native bf16 (ftm trains there in fp16,
# see precision.py), so theirs is the fp16 tensor peak. Keys are whole words of the device
# name (torch.cuda.get_device_name / nvidia-smi, case-insensitive); the key with the most
# words found wins: "H100 PCIE" beats "H100"; "L4" never matches an L40, nor "A10" an A100
# or an A10G (whose peak differs and is not listed: unknown, not guessed).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,  # H200 SXM
    "H200 NVL": 835.0,
    "GH200": 989.0,
    "H100": 989.0,  # SXM5 ("NVIDIA H100 80GB HBM3")
    "H100 PCIE": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,  # SXM4 and PCIe, 40 and 80 GB alike
    "A10": 125.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "4090": 165.0,  # GeForce RTX 4090 (fp32 accumulate: 165; fp16 accumulate 330)
    "T4": 65.0,  # fp16 tensor peak: no bf16
    "V100": 125.0,  # SXM2, fp16 tensor peak: no bf16
    "V100 PCIE": 112.0,
    "V100S": 130.0,
}


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", name.lower())


def peak_key(gpu_name: str) -> str | None:
    """The `PEAK_BF16_TFLOPS` key that describes ``gpu_name`` (None: not in the table)."""
    words = set(_words(gpu_name))
    found = [k for k in PEAK_BF16_TFLOPS if set(_words(k)) <= words]
    return max(found, key=lambda k: len(_words(k)), default=None)


def peak_flops(gpu_name: str) -> float | None:
    """Dense tensor peak FLOP/s of a GPU in its training format, when known (for MFU)."""
    key = peak_key(gpu_name)
    return None if key is None else PEAK_BF16_TFLOPS[key] * 1e12
