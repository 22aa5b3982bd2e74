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
               "mig": [{"uuid": "MIG-9a...", "profile": "1g.10gb", "device": 0,
                        "gi": 9, "ci": 0, "memory_total_mib": 9856,
                        "memory_used_mib": 0}]}]}

``mig`` is optional: absent, MIG is off; a list (even empty), MIG is on and the GPU is
not itself usable, its instances are. Older files without it, or without ``memory_used_mib``, still load.

Which devices a CUDA process sees, and in what order (`visible_devices`):

- CUDA numbers GPUs ``FASTEST_FIRST`` by default and in PCI bus order (nvidia-smi's order)
  with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. CUDA only promises that the fastest is device 0;
  ftm models "fastest" as the higher data-sheet bf16 peak, then compute capability, then
  memory, and breaks ties by PCI bus id (what drivers do for identical GPUs). ftm's own
  workers do not depend on this guess: they get ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and
  devices named by UUID (`providers.local.devices`).
- ``CUDA_VISIBLE_DEVICES`` entries are integers (positions in that order), ``GPU-<uuid>``
  (a unique prefix is enough) or ``MIG-<uuid>`` / legacy ``MIG-GPU-<uuid>/<gi>/<ci>``; the
  first entry decides the kind, an invalid or ambiguous entry ends the list, a repeated one
  empties it, an empty value hides every GPU (CUDA's rules, as torch models them in
  ``torch/cuda/__init__.py`` ``_parse_visible_devices`` / ``_transform_uuid_to_ordinals``).
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
    index: int | None = None
    """nvidia-smi's index of the (parent) GPU: what the user sees in nvidia-smi."""
    mig_device: int | None = None
    """nvidia-smi's MIG device index within the parent GPU (MIG instances only)."""

    @property
    def has_bf16(self) -> bool:
        """Native bf16 tensor cores (Ampere, 8.0, and later); older GPUs only emulate it."""
        return self.capability is not None and self.capability >= (8, 0)

    @property
    def has_tf32(self) -> bool:
        return self.capability is not None and self.capability >= (8, 0)

    @property
    def available_bytes(self) -> int:
        """Free memory when known, else the total (nothing better to compare against)."""
        return self.memory_bytes if self.free_bytes is None else self.free_bytes

    def describe(self) -> str:
        """How a refusal names it: 'GPU 1 (NVIDIA H100 80GB HBM3, GPU-5d5ba0d6)'."""
        where = "GPU" if self.index is None else f"GPU {self.index}"
        if self.mig:
            where += f" MIG device {self.mig_device}" if self.mig_device is not None else " MIG"
        # "GPU-5d5ba0d6": the UUID's first group (a unique prefix CUDA accepts too); the
        # legacy MIG-GPU-<uuid>/<gi>/<ci> form is only unique whole.
        short = (
            self.uuid if self.uuid.startswith("MIG-GPU-") else "-".join(self.uuid.split("-")[:2])
        )
        return f"{where} ({self.name}{', ' + short if short else ''})"


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


_QUERY = "index,uuid,name,pci.bus_id,compute_cap,memory.total,memory.used,mig.mode.current"


def _run(exe: str, *args: str) -> str | None:
    try:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _facts_from_nvidia_smi() -> list[dict]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    out = _run(exe, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits")
    if out is None:  # a driver before MIG (R450) refuses the mig.mode field: no MIG there
        old_query = _QUERY.rpartition(",")[0]
        out = _run(exe, f"--query-gpu={old_query}", "--format=csv,noheader,nounits")
        if out is None:
            return []
        out = "\n".join(f"{line}, [N/A]" for line in out.strip().splitlines())
    facts = parse_query_gpu(out)
    if any(f["mig_enabled"] for f in facts):
        # Instances' UUIDs are only in `-L`; their memory only in the summary's MIG table.
        listing, summary = _run(exe, "-L"), _run(exe)
        add_mig_instances(facts, listing or "", summary or "")
    for fact in facts:
        del fact["mig_enabled"]
    return facts


def parse_query_gpu(out: str) -> list[dict]:
    """Facts from ``nvidia-smi --query-gpu=<_QUERY> --format=csv,noheader,nounits``."""
    facts = []
    for line in out.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 8:
            continue
        index, uuid = cells[0], cells[1]
        pci, cap, total, used, mig_mode = cells[-5:]
        name = ",".join(cells[2:-5])  # a name could hold a comma
        try:
            facts.append(
                dict(
                    index=int(index),
                    uuid=uuid,
                    name=name,
                    pci_bus_id=pci,
                    compute_cap=cap,
                    memory_total_mib=int(float(total)),
                    # "[N/A]" on a MIG GPU: its memory belongs to the instances
                    memory_used_mib=int(float(used)) if _is_number(used) else None,
                    mig_enabled=mig_mode.lower() == "enabled",
                )
            )
        except ValueError:
            continue
    return facts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_L_GPU = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[^)]+)\)")
_L_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)")
_MIG_ROW = re.compile(r"^\|\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|\s*(\d+)MiB\s*/\s*(\d+)MiB")


def add_mig_instances(facts: list[dict], listing: str, summary: str) -> None:
    """Attach to each GPU with MIG on (``mig_enabled``, or every GPU of ``facts`` when
    none says) its MIG instances (``mig`` lists) from ``nvidia-smi -L`` (UUIDs and
    profiles, by GPU index and MIG device index) and plain ``nvidia-smi``'s "MIG devices"
    table (GPU, GI, CI, MIG device, memory used / total), joined on the two indices."""
    instances: dict[int, list[dict]] = {}
    gpu = None
    for line in listing.splitlines():
        if m := _L_GPU.match(line):
            gpu = int(m.group(1))
        elif (m := _L_MIG.match(line)) and gpu is not None:
            uuid = m.group(3)
            inst = dict(uuid=uuid, profile=m.group(1), device=int(m.group(2)))
            legacy = re.fullmatch(r"MIG-(GPU-[^/]+)/(\d+)/(\d+)", uuid)
            if legacy:
                inst.update(gi=int(legacy.group(2)), ci=int(legacy.group(3)))
            instances.setdefault(gpu, []).append(inst)
    memory: dict[tuple[int, int], dict] = {}
    in_mig_table = False
    for line in summary.splitlines():
        if "MIG devices:" in line:
            in_mig_table = True
        elif in_mig_table and (m := _MIG_ROW.match(line)):
            g, gi, ci, dev, used, total = (int(x) for x in m.groups())
            memory[(g, dev)] = dict(gi=gi, ci=ci, memory_used_mib=used, memory_total_mib=total)
        elif in_mig_table and "Processes:" in line:
            break
    for fact in facts:
        if not fact.get("mig_enabled", True):
            continue
        found = instances.get(fact["index"], [])
        for inst in found:
            inst.update(memory.get((fact["index"], inst["device"]), {}))
            inst.setdefault("memory_total_mib", 0)  # unknown: refuses rather than guesses
        fact["mig"] = found


def machine_gpus() -> list[dict]:
    """Every GPU of the machine as raw facts (the facts file, else nvidia-smi)."""
    path = os.environ.get(HARDWARE_FILE_ENV)
    return _facts_from_file(path) if path else _facts_from_nvidia_smi()


def _free(total_mib: int, used_mib: int | str | None) -> int | None:
    """Free = total - used by any process (None when nvidia-smi did not say)."""
    return None if used_mib is None else max(0, (total_mib - int(used_mib)) * MIB)


def _as_gpu(fact: dict) -> Gpu:
    total = int(fact["memory_total_mib"])
    return Gpu(
        name=fact["name"],
        memory_bytes=total * MIB,
        free_bytes=_free(total, fact.get("memory_used_mib")),
        uuid=fact.get("uuid", ""),
        capability=_capability(fact.get("compute_cap")),
        pci_bus_id=fact.get("pci_bus_id", ""),
        index=fact.get("index"),
    )


def _mig_instances(fact: dict) -> list[Gpu]:
    parent = _as_gpu(fact)
    found = []
    for inst in sorted(fact.get("mig") or [], key=lambda i: i.get("device", 0)):
        total = int(inst["memory_total_mib"])
        profile = inst.get("profile")
        found.append(
            Gpu(
                name=f"{parent.name} MIG {profile}" if profile else f"{parent.name} MIG",
                memory_bytes=total * MIB,
                free_bytes=_free(total, inst.get("memory_used_mib")),
                uuid=inst["uuid"],
                capability=parent.capability,
                pci_bus_id=parent.pci_bus_id,
                mig=True,
                index=parent.index,
                mig_device=inst.get("device"),
            )
        )
    return found


def _speed_key(fact: dict) -> tuple:
    gpu = _as_gpu(fact)
    return (
        -(peak_flops(gpu.name) or 0.0),
        tuple(-c for c in gpu.capability or (0, 0)),
        -gpu.memory_bytes,
    )


def cuda_order(facts: list[dict], device_order: str | None) -> list[dict]:
    """The machine's GPUs as CUDA numbers them under ``CUDA_DEVICE_ORDER=device_order``."""
    by_bus = sorted(facts, key=lambda f: (f.get("pci_bus_id", "").lower(), f.get("index", 0)))
    if (device_order or "").strip().upper() == "PCI_BUS_ID":
        return by_bus
    return sorted(by_bus, key=_speed_key)  # stable: equal speed keeps PCI order


def _devices_of(fact: dict) -> list[Gpu]:
    return _mig_instances(fact) if fact.get("mig") is not None else [_as_gpu(fact)]


def _strtoul(text: str) -> int:
    """CUDA reads integer entries like strtoul: leading digits count, else invalid (-1)."""
    m = re.match(r"[+-]?\d+", text)
    return int(m.group(0)) if m else -1


def _unique_prefix(entry: str, names: list[str]) -> int:
    hits = [i for i, n in enumerate(names) if n.startswith(entry)]
    return hits[0] if len(hits) == 1 else -1


def visible_devices(
    facts: list[dict] | None = None,
    visible: str | None = None,
    device_order: str | None = None,
    *,
    from_env: bool = True,
) -> list[Gpu]:
    """Every device ftm may hand to a worker: whole GPUs with MIG off and the MIG
    instances of GPUs with MIG on, restricted by ``CUDA_VISIBLE_DEVICES`` and numbered in
    CUDA's order (see the module's docstring for the rules).

    With ``from_env`` the machine's facts and this process's environment are read.
    """
    if from_env:
        facts = machine_gpus() if facts is None else facts
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        device_order = os.environ.get("CUDA_DEVICE_ORDER")
    ordered = cuda_order(list(facts or []), device_order)
    if visible is None:
        return [d for f in ordered for d in _devices_of(f)]
    entries = [e.strip() for e in visible.split(",")] if visible.strip() else []
    if not entries:
        return []
    kind = (
        "GPU-" if entries[0].startswith("GPU-") else "MIG-" if entries[0].startswith("MIG-") else ""
    )
    picked: list[Gpu] = []
    for entry in entries:
        if kind == "":
            i = _strtoul(entry)
            found = _devices_of(ordered[i]) if 0 <= i < len(ordered) else []
        elif kind == "GPU-":
            i = (
                _unique_prefix(entry, [f.get("uuid", "") for f in ordered])
                if entry.startswith(kind)
                else -1
            )
            found = _devices_of(ordered[i]) if i >= 0 else []
        else:
            found = _match_mig(entry, ordered)
        if not found:
            break  # CUDA: an invalid entry ends the list
        if any(d in picked for d in found):
            return []  # CUDA: a repeated device empties it
        picked.extend(found)
    return picked


def _match_mig(entry: str, ordered: list[dict]) -> list[Gpu]:
    legacy = re.fullmatch(r"MIG-(GPU-[^/]+)/(\d+)/(\d+)", entry)
    if legacy:
        parent, gi, ci = legacy.group(1), int(legacy.group(2)), int(legacy.group(3))
        for f in ordered:
            if f.get("uuid") == parent:
                for inst, dev in zip(
                    sorted(f.get("mig") or [], key=lambda i: i.get("device", 0)),
                    _mig_instances(f),
                    strict=True,
                ):
                    if (inst.get("gi"), inst.get("ci")) == (gi, ci) or inst["uuid"] == entry:
                        return [dev]
        return []
    instances = [d for f in ordered for d in _mig_instances(f)]
    i = _unique_prefix(entry, [d.uuid for d in instances])
    return [instances[i]] if i >= 0 else []


def gpus() -> list[Gpu]:
    """CUDA devices this process would see, in CUDA's order (empty when no driver).

    A CUDA process enumerates at most one MIG instance (NVIDIA's MIG user guide: "a single
    CUDA process can only enumerate a single MIG device"), so only the first one counts
    here; `visible_devices` lists every instance ftm can assign to separate workers.
    """
    found: list[Gpu] = []
    for device in visible_devices():
        if device.mig and any(d.mig for d in found):
            continue
        found.append(device)
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
