"""Multi-process launch and placement decisions, without launching: the command, the
accelerate config it names, the DDP arguments, and where a rank's weights load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from providers.local import LocalProvider
from providers.local.jobdir import JobDir
from providers.local.precision import choose_precision

CPU_FP32 = choose_precision("auto", "cpu", None)
BF16_GPU = choose_precision("auto", "cuda", (9, 0))


def _hp(method: str, **over) -> dict:
    from providers.local.options import resolve_hyperparameters
    from providers.types import JobSpec

    spec = JobSpec(name="t", base_model="org/m", train_path="t.jsonl", method=method, options=over)
    return resolve_hyperparameters(spec)


def test_the_launch_names_ftms_own_config_and_states_every_setting(tmp_path):
    p = LocalProvider(jobs_dir=tmp_path, database_url="", python="/usr/bin/python3")
    job = JobDir(tmp_path / "j")
    cmd = p.worker_command(job, n_gpus=2)

    def flag(name: str) -> str:
        return cmd[cmd.index(name) + 1]

    assert cmd[:3] == ["/usr/bin/python3", "-m", "accelerate.commands.launch"]
    assert flag("--config_file") == str(job.path / "accelerate.yaml")
    assert flag("--num_processes") == "2" and flag("--num_machines") == "1"
    # The trainer's own arguments set the precision; the launcher must inject none.
    assert flag("--mixed_precision") == "no"
    assert flag("--main_process_port") == "0"  # a free port: jobs side by side
    # `--cpu` would start one plain process; --multi_gpu runs torch's agent, also on CPU
    assert "--multi_gpu" in cmd and "--cpu" not in cmd
    assert cmd[-3:] == ["-m", "providers.local.worker", str(job.path)]


def test_the_written_config_is_what_accelerate_reads(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    from providers.local.distributed import write_accelerate_config

    job = JobDir(tmp_path)
    write_accelerate_config(job, 4, cpu=True)
    loaded = load_config_from_file(str(tmp_path / "accelerate.yaml"))
    assert loaded.distributed_type == "MULTI_GPU"
    assert loaded.num_processes == 4 and loaded.mixed_precision == "no"
    assert loaded.use_cpu is True
    assert yaml.safe_load((tmp_path / "accelerate.yaml").read_text())["num_machines"] == 1


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_ddp_does_not_search_for_unused_parameters(tuning, tmp_path):
    from transformers import TrainingArguments

    from providers.local.training import common_args

    args, _ = common_args(_hp(tuning, device="cpu"), tmp_path, 64, False, "cpu", CPU_FP32)
    built = TrainingArguments(**args)
    assert built.ddp_find_unused_parameters is False
    assert built.restore_callback_states_from_checkpoint is True


def test_steps_count_the_processes_really_training(tmp_path, monkeypatch):
    from providers.local.training import common_args

    hp = _hp("lora", device="cpu", batch_size=2, epochs=1, n_gpus=2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    _, total = common_args(hp, tmp_path, 64, False, "cpu", CPU_FP32)
    assert total == 16  # 64 rows / (2 per rank x 2 ranks)
    monkeypatch.setenv("WORLD_SIZE", "1")  # the same option, one process: twice the steps
    assert common_args(hp, tmp_path, 64, False, "cpu", CPU_FP32)[1] == 32


@pytest.mark.parametrize("tuning", ["lora", "full", "qlora"])
def test_each_rank_loads_its_weights_straight_onto_its_own_gpu(tuning, monkeypatch):
    """On CUDA, from_pretrained gets this rank's device as the device map: weights go
    to the GPU as they load, not into one host-RAM copy per rank first."""
    from providers.local import training

    seen: dict = {}

    def from_pretrained(path, **kwargs):  # stands in for the loader, which needs a GPU
        seen.update(kwargs)
        return "model"

    monkeypatch.setattr(training.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert training.load_model("/m", tuning, "cuda", BF16_GPU) == "model"
    assert seen["device_map"] == {"": 1}

    seen.clear()
    training.load_model("/m", tuning, "cpu", CPU_FP32)
    assert seen.get("device_map") in (None, {"": "cpu"})  # the CPU: where it loads anyway


def test_cancel_signals_each_live_rank_by_its_recorded_pid(tmp_path):
    """Ranks run in their own sessions: each is signalled by the pid it recorded; a
    rank that is gone (or whose pid was reused) is not."""
    import signal
    import subprocess

    job = JobDir(tmp_path)
    rank = subprocess.Popen(["sleep", "60"], start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    job.write_rank_pid(1, rank.pid)
    job.write_rank_pid(2, gone.pid)
    assert job.signal_ranks(signal.SIGTERM) == 1
    assert rank.wait(timeout=10) == -signal.SIGTERM
    assert job.rank_log_path(0) == job.log_path
    assert job.rank_log_path(1) == tmp_path / "worker.rank1.log"


def _agree_in_rank(rank: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    from providers.local.distributed import agreed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        # Only rank 1 was asked to stop (a signal that reached it alone, say).
        decided = agreed(rank == 1, "cpu")
        Path(out, f"rank{rank}").write_text(str(decided))
    finally:
        dist.destroy_process_group()


def test_a_stop_one_rank_saw_is_agreed_by_every_rank(tmp_path):
    """Real gloo, two processes: the ranks that were not told stop at the same step end
    as the one that was (else it would wait alone in the next collective)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_agree_in_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0").read_text() == "True"
    assert (tmp_path / "rank1").read_text() == "True"
    from providers.local.distributed import agreed

    assert agreed(False, "cpu") is False and agreed(True, "cpu") is True  # alone: its own


def test_a_dead_multi_process_job_quotes_every_ranks_log(tmp_path):
    """A multi-process job can die of one rank: the failure quotes the end of each rank's
    own log, not only rank 0's (which may say nothing of the cause)."""
    import subprocess

    from providers.types import JobStatus

    p = LocalProvider(jobs_dir=tmp_path, database_url="", python="/usr/bin/python3")
    job = JobDir(tmp_path / "j")
    job.path.mkdir()
    job.write_config(
        {"job_uid": "j", "hp": _hp("lora", n_gpus=2, device="cpu"), "base_model": "org/m"}
    )
    launcher = subprocess.Popen(["true"])
    launcher.wait()
    job.write_pid(launcher.pid)  # the launcher is gone, with no final status written
    job.log_path.write_text("rank 0 of 2 on cpu:0 (MULTI_CPU), mixed precision no\n")
    job.rank_log_path(1).write_text("Traceback (most recent call last):\nMemoryError: rank 1\n")
    failed = p.refresh(str(job.path)).job
    assert failed.status == JobStatus.FAILED
    assert "rank 0 of 2" in failed.error.message
    assert "-- rank 1 (worker.rank1.log):" in failed.error.message
    assert "MemoryError: rank 1" in failed.error.message
