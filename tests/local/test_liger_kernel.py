"""Option liger_kernel: auto turns Liger's kernels on exactly where they can run (a CUDA GPU
and the liger-kernel package), true where they cannot is refused before a job starts, and
the decision reaches the trainer's arguments.

GPUs come from the hardware seam (`tests.hardware_facts`); whether the package is
installed is the one thing monkeypatched (`kernels.liger_installed`): it cannot be
installed on this CPU machine (Triton kernels, CUDA only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.errors import SpecRejected
from providers.local import kernels
from providers.local.options import resolve_hyperparameters
from providers.types import JobSpec
from tests.hardware_facts import fake_gpus, gpu_fact

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _spec(**options) -> JobSpec:
    return JobSpec(name="t", base_model="/m", train_path="/t.jsonl", method="lora", options=options)


@pytest.mark.parametrize(
    "setting, device, installed, expected",
    [
        ("auto", "cuda", True, True),
        ("auto", "cuda", False, False),
        ("auto", "cpu", True, False),
        ("auto", "cpu", False, False),
        ("false", "cuda", True, False),
        ("true", "cuda", True, True),
    ],
)
def test_decision(setting: str, device: str, installed: bool, expected: bool) -> None:
    assert kernels.use_liger_kernel(setting, device, installed) is expected


def test_true_without_cuda_or_package_is_refused_with_what_to_do() -> None:
    with pytest.raises(kernels.KernelError, match="needs a CUDA GPU.*liger_kernel=auto or false"):
        kernels.use_liger_kernel("true", "cpu", installed=True)
    with pytest.raises(kernels.KernelError, match=r"not installed.*pip install 'ftm\[gpu\]'"):
        kernels.use_liger_kernel("true", "cuda", installed=False)


def test_installed_reads_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"liger-kernel": "0.2.9"}

    def version(name: str) -> str:
        if name not in versions:
            raise kernels.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(kernels.metadata, "version", version)
    assert not kernels.liger_installed()  # transformers refuses below 0.3.0
    versions["liger-kernel"] = "0.8.5"
    assert kernels.liger_installed()
    del versions["liger-kernel"]
    assert not kernels.liger_installed()


def test_cli_refuses_true_on_a_machine_that_cannot_run_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_gpus(monkeypatch, tmp_path, [gpu_fact("h100", 0)])
    monkeypatch.setattr(kernels, "liger_installed", lambda: False)
    with pytest.raises(SpecRejected, match="liger-kernel package is not installed") as exc:
        resolve_hyperparameters(_spec(liger_kernel="true"))
    assert exc.value.param == "liger_kernel"

    monkeypatch.setattr(kernels, "liger_installed", lambda: True)
    assert resolve_hyperparameters(_spec(liger_kernel="true"))["liger_kernel"] == "true"
    with pytest.raises(SpecRejected, match="needs a CUDA GPU"):
        resolve_hyperparameters(_spec(liger_kernel="true", device="cpu"))

    fake_gpus(monkeypatch, tmp_path, [])  # a machine without GPUs
    with pytest.raises(SpecRejected, match="needs a CUDA GPU"):
        resolve_hyperparameters(_spec(liger_kernel="true"))
    # auto is never refused: the worker decides on the device it trains on
    assert resolve_hyperparameters(_spec())["liger_kernel"] == "auto"


def test_trainer_arguments_follow_the_decision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trl import SFTConfig

    from providers.local.precision import choose_precision
    from providers.local.training import common_args

    bf16_gpu = choose_precision("auto", "cuda", (9, 0))
    cpu_fp32 = choose_precision("auto", "cpu", None)

    fake_gpus(monkeypatch, tmp_path, [gpu_fact("h100", 0)])
    monkeypatch.setattr(kernels, "liger_installed", lambda: True)
    hp = resolve_hyperparameters(_spec())
    on_gpu, _ = common_args(hp, tmp_path, 16, False, "cuda", bf16_gpu)
    assert on_gpu["use_liger_kernel"] is True
    on_cpu, _ = common_args(hp, tmp_path, 16, False, "cpu", cpu_fp32)
    assert on_cpu["use_liger_kernel"] is False
    off, _ = common_args({**hp, "liger_kernel": "false"}, tmp_path, 16, False, "cuda", bf16_gpu)
    assert off["use_liger_kernel"] is False
    monkeypatch.setattr(kernels, "liger_installed", lambda: False)
    missing, _ = common_args(hp, tmp_path, 16, False, "cuda", bf16_gpu)
    assert missing["use_liger_kernel"] is False
    # the arguments build real trl config on this machine
    assert SFTConfig(**on_cpu).use_liger_kernel is False
    # a worker on a machine that cannot run it fails clearly (the option came from elsewhere)
    with pytest.raises(kernels.KernelError, match="liger_kernel=true"):
        common_args({**hp, "liger_kernel": "true"}, tmp_path, 16, False, "cuda", bf16_gpu)
