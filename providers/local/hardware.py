"""What this machine trains on, found without importing torch (the check runs in the CLI).

GPUs come from ``nvidia-smi``; the CPU from /proc. Peak FLOP/s figures are the dense bf16
numbers of NVIDIA's data sheets, used for MFU.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int


def gpus() -> list[Gpu]:
    """CUDA GPUs visible to this process (empty when there is no driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        name, _, mib = line.rpartition(",")
        try:
            found.append(Gpu(name.strip(), int(float(mib)) * 2**20))
        except ValueError:
            continue
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


# Dense bf16 TFLOP/s (NVIDIA data sheets, no sparsity); matched by substring of the name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "4090": 165.0,
    "A10": 125.0,
}


def peak_flops(gpu_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU, when known."""
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in gpu_name:
            return tflops * 1e12
    return None
