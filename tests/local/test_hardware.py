"""The hardware seam: the devices a CUDA process sees, in CUDA's order, with their free
memory; MIG instances; nvidia-smi's text parsed as it really reads."""

from __future__ import annotations

import pytest

from providers.local import hardware
from providers.local.hardware import MIB
from tests.hardware_facts import fake_gpus, gpu_fact, mig_fact

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def names(found: list[hardware.Gpu]) -> list[str]:
    return [g.uuid for g in found]


@pytest.fixture
def two_gpus(monkeypatch, tmp_path):
    """A T4 on the first PCI bus and an H100 on the second (nvidia-smi: 0 = T4)."""
    facts = [gpu_fact("t4", 0, used_mib=2000), gpu_fact("h100", 1)]
    fake_gpus(monkeypatch, tmp_path, facts)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return facts


def test_cuda_numbers_the_fastest_gpu_first_unless_told_pci_bus_order(two_gpus, monkeypatch):
    t4, h100 = (f["uuid"] for f in two_gpus)
    assert names(hardware.gpus()) == [h100, t4]  # FASTEST_FIRST, CUDA's default
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert names(hardware.gpus()) == [h100]  # an integer is a position in CUDA's order
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert names(hardware.gpus()) == [t4]


def test_identical_gpus_keep_pci_bus_order(monkeypatch, tmp_path):
    # listed out of order in the facts file: CUDA and nvidia-smi both go by the bus
    facts = [gpu_fact("h100", 1), gpu_fact("h100", 0)]
    fake_gpus(monkeypatch, tmp_path, facts)
    assert [g.index for g in hardware.gpus()] == [0, 1]


def test_gpu_uuids_and_unique_prefixes_name_devices(two_gpus, monkeypatch):
    t4, h100 = (f["uuid"] for f in two_gpus)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", h100)
    assert names(hardware.gpus()) == [h100]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{t4[:12]},{h100[:9]}")
    assert names(hardware.gpus()) == [t4, h100]  # the order of the list, not the bus's


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("1,7,0", ["t4"]),  # CUDA order [h100, t4]: 7 is invalid and ends the list
        ("1,-1,0", ["t4"]),
        ("0,0", []),  # a repeated device empties the list
        ("", []),  # no GPU at all
        ("GPU-nope,{h100}", []),  # an unknown UUID first: nothing
        ("{h100},GPU-nope,{t4}", ["h100"]),
        ("{h100},1", ["h100"]),  # the first entry decides the kind: an integer ends it
        ("GPU-", []),  # ambiguous prefix: both GPUs start with it
    ],
)
def test_cuda_visible_devices_follow_cudas_rules(two_gpus, monkeypatch, visible, expected):
    uuid = {"t4": two_gpus[0]["uuid"], "h100": two_gpus[1]["uuid"]}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible.format(**uuid))
    assert names(hardware.gpus()) == [uuid[k] for k in expected]


def test_free_memory_is_total_minus_what_other_processes_use(two_gpus):
    t4 = next(g for g in hardware.gpus() if g.uuid == two_gpus[0]["uuid"])
    assert t4.memory_bytes == 15360 * MIB
    assert t4.free_bytes == (15360 - 2000) * MIB == t4.available_bytes


def test_old_facts_files_without_used_memory_or_mig_still_load(monkeypatch, tmp_path):
    fact = gpu_fact("l4", 0)
    del fact["memory_used_mib"]
    fake_gpus(monkeypatch, tmp_path, [fact])
    (gpu,) = hardware.gpus()
    assert gpu.free_bytes is None and gpu.available_bytes == 23034 * MIB and not gpu.mig


@pytest.fixture
def mig_machine(monkeypatch, tmp_path):
    """GPU 0: an A100 split in two MIG instances; GPU 1: a whole A100."""
    a100 = gpu_fact("a100", 0)
    a100["mig"] = [
        mig_fact(a100, 0, "3g.40gb", 40192, used_mib=1000),
        mig_fact(a100, 1, "3g.40gb", 40192),
    ]
    whole = gpu_fact("a100", 1)
    fake_gpus(monkeypatch, tmp_path, [a100, whole])
    return a100, whole


def test_a_mig_gpu_is_its_instances_each_with_its_own_memory(mig_machine):
    a100, whole = mig_machine
    found = hardware.visible_devices()
    assert names(found) == [a100["mig"][0]["uuid"], a100["mig"][1]["uuid"], whole["uuid"]]
    first = found[0]
    assert first.mig and first.memory_bytes == 40192 * MIB
    assert first.free_bytes == (40192 - 1000) * MIB
    assert first.capability == (8, 0) and first.index == 0 and first.mig_device == 0
    assert "MIG 3g.40gb" in first.name
    # one CUDA process enumerates a single MIG instance
    assert names(hardware.gpus()) == [a100["mig"][0]["uuid"], whole["uuid"]]


def test_mig_uuids_and_the_legacy_form_name_instances(mig_machine, monkeypatch):
    a100, _ = mig_machine
    second = a100["mig"][1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", second["uuid"])
    assert names(hardware.gpus()) == [second["uuid"]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"MIG-{a100['uuid']}/2/0")  # gi 2, ci 0
    assert names(hardware.gpus()) == [second["uuid"]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"MIG-{a100['uuid']}/9/0")
    assert hardware.gpus() == []


# Captured from nvidia-smi 550 on a machine with one A100 in MIG mode and one without.
QUERY_GPU = """\
0, GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, NVIDIA A100-SXM4-80GB, 00000000:07:00.0, 8.0, 81920, [N/A], Enabled
1, GPU-a31b6f12-7c4e-0a9d-3f55-1c2b9e7d4410, NVIDIA A100-SXM4-80GB, 00000000:0F:00.0, 8.0, 81920, 6143, Disabled
"""
LIST_GPUS = """\
GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.40gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
  MIG 2g.20gb     Device  1: (UUID: MIG-cba663e8-9bed-5b7e-a4d6-8f1f0c0d2b12)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-a31b6f12-7c4e-0a9d-3f55-1c2b9e7d4410)
"""
SUMMARY = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|=========================================+========================+======================|
|   0  NVIDIA A100-SXM4-80GB          On  |   00000000:07:00.0 Off |                   On |
| N/A   31C    P0             62W /  400W |     87MiB /  81920MiB  |     N/A      Default |
+-----------------------------------------+------------------------+----------------------+
|   1  NVIDIA A100-SXM4-80GB          On  |   00000000:0F:00.0 Off |                    0 |
| N/A   33C    P0             64W /  400W |   6143MiB /  81920MiB  |      0%      Default |
+-----------------------------------------+------------------------+----------------------+

+-----------------------------------------------------------------------------------------+
| MIG devices:                                                                            |
+------------------+----------------------------------+-----------+-----------------------+
| GPU  GI  CI  MIG |                     Memory-Usage |        Vol|      Shared           |
|      ID  ID  Dev |                       BAR1-Usage | SM     Unc| CE ENC DEC OFA JPG    |
|                  |                                  |        ECC|                       |
|==================+==================================+===========+=======================|
|  0    2   0   0  |            4105MiB / 40192MiB    | 42      0 |  3   0    2    0    0 |
|                  |               2MiB / 65535MiB    |           |                       |
+------------------+----------------------------------+-----------+-----------------------+
|  0    5   0   1  |              25MiB / 19968MiB    | 28      0 |  2   0    1    0    0 |
|                  |               0MiB / 32767MiB    |           |                       |
+------------------+----------------------------------+-----------+-----------------------+

+-----------------------------------------------------------------------------------------+
| Processes:                                                                              |
|  GPU   GI   CI        PID   Type   Process name                            GPU Memory |
|        ID   ID                                                             Usage      |
|=========================================================================================|
|    0    2    0      41233      C   python                                     4080MiB |
+-----------------------------------------------------------------------------------------+
"""
# Drivers R450-R465 named instances by their parent, GPU instance and compute instance.
LIST_GPUS_LEGACY = """\
GPU 0: A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 1g.5gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0)
"""


def parsed_machine() -> list[dict]:
    facts = hardware.parse_query_gpu(QUERY_GPU)
    assert [f["mig_enabled"] for f in facts] == [True, False]
    hardware.add_mig_instances(facts, LIST_GPUS, SUMMARY)
    return facts


def test_nvidia_smi_text_gives_the_gpus_and_their_mig_instances():
    facts = parsed_machine()
    assert "mig" not in facts[1] and facts[1]["memory_used_mib"] == 6143
    assert facts[0]["memory_used_mib"] is None  # [N/A]: the instances own the memory
    assert facts[0]["mig"] == [
        dict(
            uuid="MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",
            profile="3g.40gb",
            device=0,
            gi=2,
            ci=0,
            memory_used_mib=4105,
            memory_total_mib=40192,
        ),
        dict(
            uuid="MIG-cba663e8-9bed-5b7e-a4d6-8f1f0c0d2b12",
            profile="2g.20gb",
            device=1,
            gi=5,
            ci=0,
            memory_used_mib=25,
            memory_total_mib=19968,
        ),
    ]
    found = hardware.visible_devices(facts, None, "PCI_BUS_ID", from_env=False)
    assert [(g.uuid[:12], g.memory_bytes // MIB, g.free_bytes // MIB) for g in found] == [
        ("MIG-c6d4f1ef", 40192, 40192 - 4105),
        ("MIG-cba663e8", 19968, 19968 - 25),
        ("GPU-a31b6f12", 81920, 81920 - 6143),
    ]
    # the legacy MIG name of GPU instance 5 finds the second instance
    by_legacy = hardware.visible_devices(
        facts, "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/5/0", None, from_env=False
    )
    assert names(by_legacy) == ["MIG-cba663e8-9bed-5b7e-a4d6-8f1f0c0d2b12"]


def test_legacy_mig_listing_keeps_the_instance_ids_from_the_uuid():
    facts = [
        dict(
            index=0,
            uuid="GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77",
            name="A100-SXM4-40GB",
            compute_cap="8.0",
            memory_total_mib=40536,
            memory_used_mib=None,
        )
    ]
    hardware.add_mig_instances(facts, LIST_GPUS_LEGACY, "")
    (inst,) = facts[0]["mig"]
    assert (inst["gi"], inst["ci"], inst["profile"]) == (7, 0, "1g.5gb")
    assert inst["memory_total_mib"] == 0  # memory unknown: a check refuses, never guesses
    (device,) = hardware.visible_devices(facts, None, None, from_env=False)
    assert device.uuid == "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0"
    assert device.describe() == (
        "GPU 0 MIG device 0 (A100-SXM4-40GB MIG 1g.5gb, "
        "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0)"
    )


def test_a_gpu_in_mig_mode_without_instances_offers_nothing(monkeypatch, tmp_path):
    a100 = gpu_fact("a100", 0, mig=[])
    fake_gpus(monkeypatch, tmp_path, [a100, gpu_fact("l4", 1)])
    assert [g.name for g in hardware.visible_devices()] == ["NVIDIA L4"]


def test_a_gpu_is_described_by_index_name_and_short_uuid(two_gpus):
    h100 = hardware.gpus()[0]
    assert h100.describe() == f"GPU 1 (NVIDIA H100 80GB HBM3, {two_gpus[1]['uuid'][:12]})"
