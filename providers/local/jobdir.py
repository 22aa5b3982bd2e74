"""A local job's directory: the one place its worker and the provider agree on.

Layout (``<jobs_dir>/<job uid>/``)::

    config.json      the resolved config the worker trains from (hyperparameters, paths)
    data/            copies of the training and validation JSONL
    worker.log       the worker's stdout and stderr
    worker.pid       "<pid> <start time>" of the running worker
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

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

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
        """Whether the worker recorded in worker.pid is still this job's process.

        Guards against pid reuse with the process start time, and reaps the worker when
        it is our own child (a dead child stays a zombie, and signal 0 still reaches it).
        """
        rec = self.read_pid()
        if rec is None:
            return False
        pid, start = rec
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

    def signal_worker(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` to the worker's process group (all ranks under accelerate)."""
        rec = self.read_pid()
        if rec is None or not self.worker_alive():
            return False
        pid = rec[0]
        try:
            os.killpg(os.getpgid(pid), sig)
        except ProcessLookupError:
            return False
        return True


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
