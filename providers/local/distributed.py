"""Multi-process training: how a job with ``n_gpus > 1`` is launched, and how its ranks
agree.

The launch is `accelerate launch --multi_gpu`, which runs torch's elastic agent
(``torch.distributed.run``): one process per rank, each in its own session. On the CPU
(``device=cpu``) the same launch runs ``n_gpus`` processes talking over gloo: a dry run of
multi-GPU training, the same code path with the count read as processes. (``accelerate
launch --cpu --num_processes N`` would not do it: without an MPI host file it starts one
plain process.)

ftm writes its own accelerate config into the job directory and names it with
``--config_file``: without it, accelerate reads the user's default config
(``$HF_HOME/accelerate/default_config.yaml``), whose mixed precision, GPU ids or
DeepSpeed setting would silently change the training. The launcher's mixed precision is
"no": the worker's TrainingArguments (ftm's precision decision) set it, and
transformers only falls back to the launcher's ``ACCELERATE_MIXED_PRECISION`` when they
ask for none.

Nothing here imports torch at module level: the provider builds the command in the CLI.
"""

from __future__ import annotations

import os
from typing import Any

from providers.local.jobdir import JobDir

ACCELERATE_CONFIG = "accelerate.yaml"


def world_size() -> int:
    """Processes training this job (``WORLD_SIZE``, set by the launcher; 1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 alone, or the rank that writes progress)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on this machine: the CUDA device it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def accelerate_config(n_processes: int, cpu: bool) -> str:
    """ftm's accelerate config for a one-machine launch of ``n_processes`` ranks."""
    return (
        "# Written by ftm for this job: `accelerate launch --config_file` reads this, never\n"
        "# the user's default config (whose settings would change the training).\n"
        "compute_environment: LOCAL_MACHINE\n"
        "distributed_type: MULTI_GPU\n"
        f"num_processes: {n_processes}\n"
        "num_machines: 1\n"
        "machine_rank: 0\n"
        "gpu_ids: all\n"
        "mixed_precision: 'no'\n"
        "dynamo_config: {}\n"
        f"use_cpu: {'true' if cpu else 'false'}\n"
        "main_process_port: 0\n"
        "debug: false\n"
    )


def write_accelerate_config(job: JobDir, n_processes: int, cpu: bool) -> None:
    from providers.local.jobdir import write_text

    write_text(job.path / ACCELERATE_CONFIG, accelerate_config(n_processes, cpu))


def launch_command(python: str, job: JobDir, n_processes: int) -> list[str]:
    """`accelerate launch` of the worker on ``n_processes`` ranks. Every setting that
    matters is on the command line too, so the config file only shuts out the default."""
    return [
        python,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(job.path / ACCELERATE_CONFIG),
        "--multi_gpu",
        "--num_processes",
        str(n_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        # 0: a free port. Two jobs (or tests) on one machine must not both take 29500.
        "--main_process_port",
        "0",
        "-m",
        "providers.local.worker",
        str(job.path),
    ]


def agreed(flag: bool, device: Any) -> bool:
    """``flag`` if any rank has it (one all-reduce, MAX), so every rank decides alike.

    Alone, or before the process group exists, the local flag. Every rank must call
    this at the same point, or the others wait in the all-reduce.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def device_map(device: str) -> dict[str, Any] | None:
    """Where from_pretrained puts the weights: straight onto this rank's GPU (not one
    host-RAM copy per rank, moved later); on the CPU, where they load anyway."""
    if device == "cuda":
        return {"": local_rank()}
    return None
