"""A real Ray head on this machine (CPU only) for the tests and the bench of training on a
Ray cluster: ``ray start --head`` on free loopback ports in a temporary directory of its
own, stopped after by the ids of its own processes (``ray stop`` would stop every Ray on
the machine, another session's too).

The head runs without this process's PYTHONPATH and FTM_* variables, as a remote cluster
would: what a job needs (ftm's code, the database URL) must reach it through the job.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """``with RayHead() as head: head.address`` (the dashboard: the Jobs API)."""

    def __init__(self, num_cpus: int = 2) -> None:
        self.num_cpus = num_cpus
        # Short: Ray's unix sockets live under it (their paths are limited to 107 bytes).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ftmray", dir="/tmp"))
        self.dashboard_port = _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FTM_", "RAY_")) and k != "PYTHONPATH"
        }
        # The cluster's `python` is this interpreter (it has ftm's dependencies).
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def start(self) -> RayHead:
        ray = str(Path(sys.executable).parent / "ray")
        command = [
            ray,
            "start",
            "--head",
            "--num-cpus",
            str(self.num_cpus),
            "--num-gpus",
            "0",
            "--node-ip-address",
            "127.0.0.1",
            "--include-dashboard",
            "true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            "--port",
            str(_free_port()),
            "--ray-client-server-port",
            str(_free_port()),
            "--dashboard-agent-listen-port",
            str(_free_port()),
            "--temp-dir",
            str(self.temp_dir),
            "--disable-usage-stats",
        ]
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{done.stdout}\n{done.stderr}")
        return self

    def processes(self) -> list:
        """Every process of this head: those naming its temp dir, and their descendants
        (Ray's workers rename themselves ``ray::...``; a job's entrypoint is theirs)."""
        import psutil

        me = psutil.Process()
        spared = {me.pid, *(p.pid for p in me.parents())}  # this process and its callers
        mine = set()
        for p in psutil.process_iter(["pid", "cmdline"]):
            if p.pid in spared:
                continue
            if str(self.temp_dir) in " ".join(p.info["cmdline"] or ()):
                mine.add(p)
                try:
                    mine.update(c for c in p.children(recursive=True) if c.pid not in spared)
                except psutil.NoSuchProcess:
                    pass
        return sorted(mine, key=lambda p: p.pid)

    def stop(self) -> None:
        found = self.processes()
        for p in found:
            _signal(p, signal.SIGTERM)
        alive = _wait_gone(found, timeout=5)
        for p in alive:
            _signal(p, signal.SIGKILL)
        _wait_gone(alive, timeout=5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(process, sig: int) -> None:
    import psutil

    try:
        process.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def _wait_gone(processes: list, timeout: float) -> list:
    """Those of ``processes`` still running after up to ``timeout`` seconds. (Not psutil's
    wait_procs: it waits on a child of ours that another thread may reap first.)"""
    import psutil

    def running(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    alive = [p for p in processes if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if running(p)]
    return alive


def wait_for(predicate, timeout: float, pause: float = 0.1):
    """``predicate()``'s first true value within ``timeout`` seconds (else AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
