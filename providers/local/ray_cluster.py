"""Local training on a Ray cluster (option ``cluster``): the same worker, placed by Ray.

The job is submitted through Ray's Jobs API (the dashboard's HTTP address,
``http://HOST:8265``, or a Ray Client address ``ray://HOST:10001``, which Ray resolves to
it). Its entrypoint runs `providers.local.worker` on the job directory, exactly as a
local launch does, so the job directory must be on storage both sides reach at the same
path (a shared mount): config, data copies, checkpoints, status.json and artifacts all
live there. The code of ``providers`` and ``db`` travels with the job (runtime_env
``py_modules``) so the cluster runs the launcher's version of the worker; its Python
needs ftm's ``local`` dependencies (torch, transformers, peft, trl).

Ray's scheduler places the job by the resources the estimate asks for: GPUs (by count)
and, for a CPU job, host memory. ``check_fits`` refuses a request no node of the
cluster can hold (otherwise the job would wait for ever).

What the provider reads from Ray instead of a pid: the job's status (PENDING and
RUNNING: alive; SUCCEEDED, FAILED, STOPPED: gone). A job gone without the worker's final
status in status.json was lost (its node died, it was killed) and is resumable from its
last checkpoint like a local worker that died.

The database URL never enters what Ray records (see `providers.local.secret_handoff`).

Ray is imported only here, inside functions: it is heavy, and optional (``ftm[ray]``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.errors import ConfigurationError, ProviderError, SpecRejected
from providers.local import memory
from providers.local.jobdir import JobDir

ALIVE = ("PENDING", "RUNNING")
MISSING = "MISSING"
"""Our word for a job the cluster does not know (its head restarted without its job
table): lost like a failed one."""

STOP_GRACE_S = 300
"""How long Ray waits after its own stop signal (``ray job stop``) before SIGKILL: time
for the worker to save its checkpoint at the end of the current step (Ray's default, 3 s,
is not)."""

SCHEMES = ("http://", "https://", "ray://")

CLUSTER_PYTHON = "python"
"""The interpreter the entrypoint runs on the cluster's node: the ``python`` on its PATH
(the one that runs Ray there; this machine's interpreter path means nothing there)."""


@dataclass(frozen=True)
class Resources:
    """What the Ray job asks the scheduler for."""

    num_cpus: float
    num_gpus: int
    memory_bytes: int | None
    """Host memory (Ray's ``memory`` resource), None: not asked for."""

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU", f"{self.num_gpus} GPU"]
        if self.memory_bytes:
            parts.append(f"{memory.gb(self.memory_bytes)} memory")
        return ", ".join(parts)


def check_address(address: str) -> str:
    """The cluster address as given, refused (SpecRejected) unless it is one Ray takes."""
    if not address.startswith(SCHEMES) or "://" == address[-3:]:
        raise SpecRejected(
            f"option cluster={address!r}: give the Ray dashboard's address "
            "(http://HOST:8265) or a Ray Client address (ray://HOST:10001)",
            param="cluster",
        )
    return address


def resolve(address: str) -> str:
    """The Jobs API's HTTP address for ``address`` (a ``ray://`` one is resolved through a
    Ray Client connection, once: at launch, not at every poll)."""
    return str(_client(address).get_address())


_clients: dict[str, Any] = {}


def _client(address: str) -> Any:
    """A Jobs API client (one per address and process: making one asks the cluster for
    its version)."""
    if address in _clients:
        return _clients[address]
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ConfigurationError(
            "option cluster needs Ray on this machine: pip install 'ftm[ray]'"
        ) from None
    try:
        _clients[address] = JobSubmissionClient(address)
        return _clients[address]
    except Exception as exc:  # ConnectionError, or Ray's own errors for a bad address
        raise ProviderError(
            f"Ray cluster {address}: cannot reach its Jobs API ({_first_line(exc)}); "
            "check that the cluster runs and that the address is its dashboard "
            "(http://HOST:8265) or Ray Client (ray://HOST:10001)",
            code="cluster_unreachable",
            retryable=True,
        ) from None


def check_fits(address: str, wanted: Resources) -> None:
    """Refuse (SpecRejected) a request that no live node of the cluster can hold.

    Ray would accept it and leave the job PENDING until such a node appears, which on a
    fixed cluster is never. (An autoscaling cluster may add one: option
    skip_memory_check=true submits without this check.)
    """
    nodes = _nodes(address)
    if not nodes:
        raise ProviderError(
            f"Ray cluster {address}: no live node", code="cluster_unreachable", retryable=True
        )

    def fits(total: dict[str, float]) -> bool:
        return (
            total.get("CPU", 0) >= wanted.num_cpus
            and total.get("GPU", 0) >= wanted.num_gpus
            and total.get("memory", 0) >= (wanted.memory_bytes or 0)
        )

    if any(fits(n) for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("memory", 0)))
    raise SpecRejected(
        f"no node of the Ray cluster at {address} can hold this job: it needs "
        f"{wanted.describe()}; the largest node offers {largest.get('CPU', 0):g} CPU, "
        f"{largest.get('GPU', 0):g} GPU, {memory.gb(int(largest.get('memory', 0)))} memory "
        "(Ray's memory resource). Use a smaller setup (device=cpu, fewer GPUs, a smaller "
        "batch_size or max_seq_len), another cluster, or option skip_memory_check=true to "
        "submit it anyway (it waits until such a node joins).",
        code="insufficient_resources",
    )


def _nodes(address: str) -> list[dict[str, float]]:
    """The total resources of each live node (Ray's state API, through the dashboard)."""
    from ray.util.state import list_nodes

    try:
        found = list_nodes(address=resolve(address), detail=True, raise_on_missing_output=False)
    except Exception as exc:
        raise ProviderError(
            f"Ray cluster {address}: cannot list its nodes ({_first_line(exc)})",
            code="cluster_unreachable",
            retryable=True,
        ) from None
    return [dict(n.resources_total or {}) for n in found if n.state == "ALIVE"]


def submission_id(job_uid: str, attempt: int) -> str:
    """One Ray job per attempt: deterministic, so a repeated submit cannot start two."""
    return f"ftm-{job_uid}-{attempt}"


def entrypoint(job: JobDir, command: list[str]) -> str:
    """The shell line Ray runs: the worker's command, its output appended to the job's
    log (``exec``: Ray's stop signal reaches the worker itself, not a shell)."""
    log = shlex.quote(str(job.log_path))
    return f"exec {shlex.join(command)} >> {log} 2>&1"


def submit(
    job: JobDir,
    address: str,
    sub_id: str,
    command: list[str],
    wanted: Resources,
    env: dict[str, str],
) -> None:
    """Submit the worker (``command``) as Ray job ``sub_id`` asking for ``wanted``.
    ``env`` must hold no secret: Ray keeps it in its job table."""
    client = _client(address)
    root = Path(__file__).resolve().parents[2]
    runtime_env = {
        "py_modules": [str(root / "providers"), str(root / "db")],
        "excludes": ["__pycache__", "*.pyc"],
        "env_vars": {**env, "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S)},
    }
    try:
        client.submit_job(
            entrypoint=entrypoint(job, command),
            submission_id=sub_id,
            runtime_env=runtime_env,
            entrypoint_num_cpus=wanted.num_cpus,
            entrypoint_num_gpus=wanted.num_gpus,
            entrypoint_memory=wanted.memory_bytes or 0,
            metadata={"ftm_job_dir": str(job.path)},
        )
    except Exception as exc:
        if "already exists" in str(exc):
            return  # submitted before (a retried create): never two workers
        raise ProviderError(
            f"Ray cluster {address}: submitting job {sub_id} failed: {_first_line(exc)}",
            code="cluster_submit_failed",
            retryable=True,
        ) from None


@dataclass(frozen=True)
class RayState:
    status: str
    """PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, or MISSING."""
    message: str

    @property
    def alive(self) -> bool:
        return self.status in ALIVE


def state(address: str, sub_id: str) -> RayState:
    """The Ray job's status and message (MISSING: the cluster does not know it).

    Raises:
        ProviderError: the cluster cannot be reached (retryable: the poller asks again).
    """
    client = _client(address)
    try:
        info = client.get_job_info(sub_id)
    except Exception as exc:
        if "does not exist" in str(exc):
            return RayState(MISSING, f"the Ray cluster at {address} has no job {sub_id}")
        raise ProviderError(
            f"Ray cluster {address}: cannot read job {sub_id} ({_first_line(exc)})",
            code="cluster_unreachable",
            retryable=True,
        ) from None
    return RayState(str(info.status.value), info.message or "")


def stop(address: str, sub_id: str) -> None:
    """Ask Ray to stop the job (a pending one never starts)."""
    try:
        _client(address).stop_job(sub_id)
    except Exception as exc:
        raise ProviderError(
            f"Ray cluster {address}: cannot stop job {sub_id} ({_first_line(exc)})",
            code="cluster_unreachable",
            retryable=True,
        ) from None


def _first_line(exc: BaseException) -> str:
    # Ray's HTTP errors carry the server's traceback: its last real line says what.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip(" .")]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".strip()
