"""A local job's directory: the one place its worker and the provider agree on.

Layout (``<jobs_dir>/<job uid>/``)::

    config.json      the resolved config the worker trains from (hyperparameters, paths)
    data/            copies of the training and validation JSONL
    worker.log       the worker's stdout and stderr (multi-process: the launcher's and rank 0's)
    worker.rank<k>.log  rank k's stdout and stderr (multi-process jobs, k >= 1)
    worker.pid       "<pid> <start time>" of the running worker (multi-process: the launcher)
    worker.rank<k>.pid  "<pid> <start time>" of rank k (multi-process jobs; cancel signals each)
    stop.request     written by cancel: every rank stops at the next step end they agree on
    accelerate.yaml  ftm's accelerate config for a multi-process launch
    status.json      the worker's last word: running / succeeded / failed / cancelled
    checkpoints/     trainer checkpoints (checkpoint-<step>/, with optimizer state)
    adapter/         the PEFT adapter (adapter_config.json + adapter_model.safetensors)
    model/           the full fine-tuned model (method full)
    merged/          base + adapter merged, when asked for

Files are written atomically (temp file + rename) so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = "config.json"
STATUS = "status.json"
PID = "worker.pid"
LOG = "worker.log"
STOP_REQUEST = "stop.request"
DATABASE_URL_ENV = "FTM_DATABASE_URL"
"""The environment variable a worker gets its database URL from, password included.
config.json holds the URL masked: a job directory is read, copied and attached to bug
reports, so a password written there would leak."""
BASE_LOADING_FILE = "ftm_base_loading.json"
"""Written next to an adapter's adapter_config.json: how its base model was loaded for
training (`training.base_loading`), so evaluation and serving load it the same way."""


@dataclass(frozen=True)
class JobDir:
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    @property
    def pid_path(self) -> Path:
        return self.path / PID

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    def rank_log_path(self, rank: int) -> Path:
        """Rank ``rank``'s log: rank 0's is the job's log (worker.log)."""
        return self.log_path if rank == 0 else self.path / f"worker.rank{rank}.log"

    def rank_pid_path(self, rank: int) -> Path:
        return self.path / f"worker.rank{rank}.pid"

    @property
    def stop_request_path(self) -> Path:
        return self.path / STOP_REQUEST

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def data(self) -> Path:
        return self.path / "data"

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def read_status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return None

    def write_status(self, **status: Any) -> None:
        write_json(self.status_path, status)

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint directory, or None."""
        if not self.checkpoints.is_dir():
            return None
        found = []
        for p in self.checkpoints.glob("checkpoint-*"):
            suffix = p.name.rpartition("-")[2]
            # A checkpoint is complete once the trainer state is written (it is last).
            if suffix.isdigit() and (p / "trainer_state.json").is_file():
                found.append((int(suffix), p))
        return max(found)[1] if found else None

    def log_tail(self, lines: int = 20, rank: int = 0) -> str:
        """The last ``lines`` lines of rank ``rank``'s log ("" when there is none)."""
        try:
            with open(self.rank_log_path(rank), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def other_rank_logs(self) -> list[tuple[int, Path]]:
        """(rank, log) of each rank above 0 that wrote a log, by rank."""
        found = []
        for p in self.path.glob("worker.rank*.log"):
            number = p.name.removeprefix("worker.rank").removesuffix(".log")
            if number.isdigit():
                found.append((int(number), p))
        return sorted(found)

    # -- the worker process -------------------------------------------------------------

    def write_pid(self, pid: int) -> None:
        self.pid_path.write_text(f"{pid} {process_start_time(pid) or 0}\n")

    def read_pid(self) -> tuple[int, int] | None:
        try:
            pid, start = self.pid_path.read_text().split()
            return int(pid), int(start)
        except (OSError, ValueError):
            return None

    def worker_alive(self) -> bool:
        """Whether the worker recorded in worker.pid is still this job's process."""
        rec = self.read_pid()
        return rec is not None and _alive(*rec)

    # -- stopping -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask every process of the job to stop at a step end (they poll this file)."""
        write_text(self.stop_request_path, "stop\n")

    def stop_requested(self) -> bool:
        return self.stop_request_path.exists()

    def clear_stop_request(self) -> None:
        self.stop_request_path.unlink(missing_ok=True)

    def write_rank_pid(self, rank: int, pid: int) -> None:
        write_text(self.rank_pid_path(rank), f"{pid} {process_start_time(pid) or 0}\n")

    def clear_rank_pids(self) -> None:
        for p in self.path.glob("worker.rank*.pid"):
            p.unlink(missing_ok=True)

    def signal_ranks(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` to each live rank that recorded its pid; returns how many.

        The ranks of a multi-process job run in their own sessions (torch's elastic agent
        starts each with ``start_new_session``), so a signal to the launcher's group does
        not reach them; and the agent, signalled, forwards it but SIGKILLs the ranks 30 s
        later, whatever they are doing (a checkpoint save, say).
        """
        sent = 0
        for p in sorted(self.path.glob("worker.rank*.pid")):
            try:
                pid, start = (int(x) for x in p.read_text().split())
            except (OSError, ValueError):
                continue
            if _alive(pid, start):
                try:
                    os.kill(pid, sig)
                    sent += 1
                except ProcessLookupError:
                    pass
        return sent

    def signal_worker(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` to the worker's process group (a multi-process job's launcher: its
        ranks run in sessions of their own, see `signal_ranks`)."""
        rec = self.read_pid()
        if rec is None or not self.worker_alive():
            return False
        pid = rec[0]
        try:
            os.killpg(os.getpgid(pid), sig)
        except ProcessLookupError:
            return False
        return True


def _alive(pid: int, start: int) -> bool:
    """Whether ``pid`` still runs and is the process that started at ``start``.

    Guards against pid reuse with the process start time, and reaps the process when it
    is our own child (a dead child stays a zombie, and signal 0 still reaches it).
    """
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: nothing to reap
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's: cannot be ours, but be conservative
    state = _proc_state(pid)
    if state in {"Z", "X"}:
        return False
    now_start = process_start_time(pid)
    return not (start and now_start and now_start != start)


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell processes apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
