"""Which GPUs a local job trains on: each job gets exactly its own devices.

A worker that inherits the whole machine trains on every GPU: with one process,
transformers counts all visible GPUs (``training_args.py`` ``_setup_devices``: ``_n_gpu =
torch.cuda.device_count()``), wraps the model in ``nn.DataParallel`` (``trainer.py``
``_wrap_model``: ``if self.args.n_gpu > 1 ...: model = nn.DataParallel(model)``) and
multiplies the batch (``train_batch_size = per_device_train_batch_size * max(1, n_gpu)``).
So ftm assigns each job ``n_gpus`` devices and the worker sees only those
(`worker_env`): ``CUDA_VISIBLE_DEVICES`` names them by UUID, which no numbering order can
change, and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes any library that reads indices agree
with nvidia-smi.

Assignment (`choose`): among the devices this process may use (`hardware.visible_devices`,
so a user's own ``CUDA_VISIBLE_DEVICES`` is respected), those no live local job holds, the
ones with the most free memory first. A job holds the devices its ``config.json`` records
(``devices``, UUIDs) while its worker lives; a local model server holds the GPU it was
started on the same way. Choosing and recording happen under one file lock in the jobs
directory (`assignment_lock`), so two launches never take the same GPU.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from providers.errors import SpecRejected
from providers.local.hardware import Gpu
from providers.local.jobdir import JobDir

LOCK_FILE = ".devices.lock"


@dataclass(frozen=True)
class Holder:
    """A live local job and the device UUIDs it trains on."""

    job_uid: str
    name: str
    devices: tuple[str, ...]
    what: str = "job"
    """``job`` (a training worker) or ``model server`` (a local deployment's server)."""

    def describe(self) -> str:
        return f"{self.what} {self.name!r} ({self.job_uid[:8]})"


@contextmanager
def assignment_lock(jobs_dir: Path) -> Iterator[None]:
    """Exclusive, across processes, for choosing devices and recording the choice (held
    until the worker is started, so its pid marks the job live before anyone looks)."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    with open(jobs_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def holders(jobs_dir: Path, *, besides: Path | None = None) -> dict[str, Holder]:
    """Device UUID -> the live job holding it, from the job directories under
    ``jobs_dir`` (``besides``: a job to leave out, e.g. the one being resumed). A job whose
    worker is dead holds nothing."""
    held: dict[str, Holder] = {}
    if not jobs_dir.is_dir():
        return held
    for config_path in sorted(jobs_dir.glob("*/config.json")):
        job = JobDir(config_path.parent)
        if besides is not None and job.path.resolve() == besides.resolve():
            continue
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            continue
        uuids = tuple(config.get("devices") or ())
        if not uuids or not job.worker_alive():
            continue
        holder = Holder(
            job_uid=str(config.get("job_uid", job.path.name)),
            name=str((config.get("spec") or {}).get("name") or job.path.name),
            devices=uuids,
        )
        held.update(dict.fromkeys(uuids, holder))
    held.update(_server_holders(jobs_dir))
    return held


def _server_holders(jobs_dir: Path) -> dict[str, Holder]:
    """Device UUID -> the live model server holding it (`providers.local.serving`: its
    ``config.json`` records the GPU it was started on)."""
    from providers.local.serving.server_dir import ServerDir, servers_dir

    held: dict[str, Holder] = {}
    root = servers_dir(jobs_dir)
    if not root.is_dir():
        return held
    for config_path in sorted(root.glob("*/config.json")):
        server = ServerDir(config_path.parent)
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            continue
        uuids = tuple(config.get("devices") or ())
        if not uuids or not server.worker_alive():
            continue
        holder = Holder(
            job_uid=server.path.name,
            name=str(config.get("base_name") or server.path.name),
            devices=uuids,
            what="model server",
        )
        held.update(dict.fromkeys(uuids, holder))
    return held


def assignable(candidates: Sequence[Gpu], n: int) -> list[Gpu]:
    """The devices a job of ``n`` devices can use: any for one; whole GPUs only for more
    (a CUDA process enumerates one MIG instance at most, and NCCL cannot join them)."""
    return [g for g in candidates if n == 1 or not g.mig]


def choose(
    candidates: Sequence[Gpu],
    held: Mapping[str, Holder],
    n: int,
    *,
    prefer: Sequence[str] = (),
) -> list[Gpu]:
    """``n`` free devices for a job, in CUDA's order (rank i trains on the i-th).

    ``prefer`` (a resumed job's devices) wins when all of them are still visible and
    free; otherwise the free devices with the most free memory (ties: CUDA's order).

    Raises:
        SpecRejected: fewer than ``n`` free devices; the message names who holds which.
    """
    usable = assignable(candidates, n)
    free = [g for g in usable if g.uuid not in held]
    by_uuid = {g.uuid: g for g in free}
    if prefer and len(prefer) == n and all(u in by_uuid for u in prefer):
        chosen = [by_uuid[u] for u in prefer]
    else:
        if len(free) < n:
            raise SpecRejected(_busy_message(usable, held, n, len(free)), code="no_free_gpu")
        chosen = sorted(free, key=lambda g: -g.available_bytes)[:n]
    return sorted(chosen, key=list(candidates).index)


def preview(candidates: Sequence[Gpu], held: Mapping[str, Holder], n: int) -> list[Gpu]:
    """What `choose` would pick now, or, when too few are free, the best ``n`` of the
    usable ones (for checks that run before launch, e.g. the memory check)."""
    try:
        return choose(candidates, held, n)
    except SpecRejected:
        usable = assignable(candidates, n)
        return sorted(usable, key=lambda g: -g.available_bytes)[:n]


def _busy_message(usable: Sequence[Gpu], held: Mapping[str, Holder], n: int, n_free: int) -> str:
    taken = "; ".join(
        f"{g.describe()} is held by {held[g.uuid].describe()}" for g in usable if g.uuid in held
    )
    options = ["wait for one of those jobs to end", "cancel one (ftm jobs cancel ID)"]
    if n_free:
        options.append(f"ask for fewer GPUs (option n_gpus={n_free})")
    return (
        f"no free GPU for this job: it needs {n}, {n_free} of {len(usable)} visible "
        f"{'is' if n_free == 1 else 'are'} free ({taken}). To start it: "
        + ", or ".join(options)
        + "."
    )


def worker_env(devices: Sequence[str], *, cpu: bool) -> dict[str, str]:
    """Environment for a worker assigned ``devices`` (UUIDs). A CPU job sees no GPU; a job
    ftm assigned nothing (no GPU known to nvidia-smi) keeps the environment as it is."""
    if devices:
        return {"CUDA_VISIBLE_DEVICES": ",".join(devices), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if cpu:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {}
