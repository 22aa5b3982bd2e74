"""A local model server's directory (``<home>/servers/<server key>/``): the one place the
server process and the provider agree on, laid out like a training job's (and tracked
with the same pid/liveness code, `providers.local.jobdir.JobDir`)::

    config.json     how to serve: base model, backend, hardware, torch threads
    adapters.json   name -> adapter directory ("" for the base itself): what is deployed
    server.pid      "<pid> <start time>" of the running server
    port            the loopback port it listens on (written once it is bound)
    server.log      its stdout and stderr (first line: which backend, and why)
    lock            held while the provider changes what the server serves
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from providers.local.jobdir import JobDir, write_json, write_text


def servers_dir(jobs_dir: Path) -> Path:
    """Where model servers live: ``servers/`` beside the jobs directory (the training
    jobs' GPU assignment looks there too: a server holds its GPU as a job does)."""
    return jobs_dir.parent / "servers"


class ServerDir(JobDir):
    """A `JobDir` whose process is a model server: its own pid and log file names, and
    the adapters and port files."""

    @property
    def pid_path(self) -> Path:
        return self.path / "server.pid"

    @property
    def log_path(self) -> Path:
        return self.path / "server.log"

    @property
    def adapters_path(self) -> Path:
        return self.path / "adapters.json"

    @property
    def port_path(self) -> Path:
        return self.path / "port"

    def read_adapters(self) -> dict[str, str]:
        """What is deployed on this server: name -> adapter directory ("" for the base)."""
        try:
            return dict(json.loads(self.adapters_path.read_text()))
        except (OSError, ValueError):
            return {}

    def write_adapters(self, adapters: dict[str, str]) -> None:
        write_json(self.adapters_path, adapters)

    def read_port(self) -> int | None:
        try:
            return int(self.port_path.read_text())
        except (OSError, ValueError):
            return None

    def write_port(self, port: int) -> None:
        write_text(self.port_path, f"{port}\n")

    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:PORT/v1`` once the server has bound its port."""
        port = self.read_port()
        return None if port is None else f"http://127.0.0.1:{port}/v1"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes: two deploys on one base start one server."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
