"""Local model servers as deployments: start one per base model (detached, like a
training worker), add and remove adapters on it, check it, stop it.

A deployment of a local model is one name on one server: ``remote_id`` is the server's
directory, ``name`` what clients send. Deploying a second adapter of the same base adds
it to the running server (POST /v1/load_lora_adapter, which vLLM and ftm's transformers
server both answer); stopping one removes it, and stopping the last stops the process
(SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from providers.errors import ProviderError
from providers.local import devices, hardware
from providers.local.serving.plan import (
    Served,
    choose_backend,
    plan_for,
    vllm_can_serve,
    vllm_command,
)
from providers.local.serving.server_dir import ServerDir
from providers.types import Deployment, HardwareOption

READY_TIMEOUT_S = 900.0
"""How long `deploy` waits for a server's /health (a 7B base can take minutes to load)."""
STOP_GRACE_S = 10.0
"""How long a server has to finish its requests after SIGTERM before SIGKILL."""
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Health:
    """What a server says of itself: up (answering /health at all), ready, its names."""

    up: bool
    ready: bool
    names: frozenset[str] = frozenset()


def hardware_options() -> list[HardwareOption]:
    """The CPU and each GPU this machine has (unpriced: local hardware is already paid)."""
    options = [HardwareOption("cpu", f"CPU ({hardware.cpu_name()})", None)]
    for index, gpu in enumerate(hardware.gpus()):
        options.append(HardwareOption(f"cuda:{index}", gpu.describe(), None))
    return options


def _check_hardware(choice: str) -> None:
    known = [option.id for option in hardware_options()]
    if choice not in known:
        raise ProviderError(
            f"no hardware {choice!r} on this machine; choose one of: {', '.join(known)}",
            code="invalid_hardware",
        )


def _device_env(choice: str) -> dict[str, str]:
    """The server's view of the devices: none for the CPU, only the chosen GPU else."""
    uuid = _gpu_uuid(choice)
    return devices.worker_env([uuid] if uuid else [], cpu=choice == "cpu")


def _gpu_uuid(choice: str) -> str | None:
    """The UUID of the GPU ``cuda:N`` names; None for the CPU (or a GPU without one)."""
    if choice == "cpu":
        return None
    return hardware.gpus()[int(choice.split(":", 1)[1])].uuid or None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalServers:
    """The servers under ``root`` (``<home>/servers``), started with ``python``.

    Args:
        torch_threads: CPU threads each transformers server uses (None: torch's default).
        sleep: how waiting waits (tests pass one that records instead).
    """

    def __init__(
        self,
        root: Path,
        python: str,
        *,
        ready_timeout_s: float = READY_TIMEOUT_S,
        stop_grace_s: float = STOP_GRACE_S,
        torch_threads: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jobs_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.jobs_dir = jobs_dir
        """Where training jobs record their GPUs: a server started on a GPU takes it under
        the same lock (`providers.local.devices`). None: GPUs are not shared-checked."""
        self.python = python
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.torch_threads = torch_threads
        self.sleep = sleep

    # -- asking a server ------------------------------------------------------------------

    def health(self, server: ServerDir) -> Health:
        url = server.base_url
        if url is None or not server.worker_alive():
            return Health(False, False)
        root = url.removesuffix("/v1")
        try:
            answer = httpx.get(f"{root}/health", timeout=2.0)
            if answer.status_code != 200:
                return Health(True, False)
            models = httpx.get(f"{url}/models", timeout=5.0).json()
        except (httpx.HTTPError, ValueError):
            return Health(False, False)
        return Health(True, True, frozenset(m["id"] for m in models.get("data", [])))

    def _post(self, server: ServerDir, route: str, body: dict[str, str]) -> None:
        try:
            answer = httpx.post(f"{server.base_url}/{route}", json=body, timeout=600.0)
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"the local server in {server.path} did not answer {route}: {exc}; see "
                f"{server.log_path}",
                code="server_unreachable",
            ) from None
        if answer.status_code >= 400:
            raise ProviderError(
                f"the local server in {server.path} refused {route} ({answer.status_code}): "
                f"{answer.text[:300]}",
                code="server_refused",
            )

    def _load(self, server: ServerDir, served: Served) -> None:
        assert served.adapter is not None
        self._post(
            server, "load_lora_adapter", {"lora_name": served.name, "lora_path": served.adapter}
        )

    # -- deployments ----------------------------------------------------------------------

    def _deployment(self, served: Served, server: ServerDir, state: str) -> Deployment:
        config = server.read_config() if server.config_path.is_file() else {}
        return Deployment(
            name=served.name,
            model=served.adapter or served.base,
            state=state,
            remote_id=str(server.path),
            endpoint_url=server.base_url,
            hardware=config.get("hardware"),
            usd_per_hour=None,  # local pricing declares no hourly figure
        )

    def deploy(self, model: str, hardware_choice: str | None, wait: bool) -> Deployment:
        """Serve ``model``: on its base's running server (added if it is not served yet),
        else on a new one. Idempotent: a model already served returns at once."""
        if not Path(model).exists() and "/" not in model:
            raise ProviderError(
                f"{model} is neither a local model directory nor a hub id", code="not_found"
            )
        if hardware_choice is not None:
            _check_hardware(hardware_choice)
        served = plan_for(model)
        server = ServerDir(self.root / served.server_key)
        with server.locked():
            wanted = server.read_adapters()
            wanted[served.name] = served.adapter or ""
            alive = server.worker_alive()
            config = server.read_config() if alive and server.config_path.is_file() else None
            if config and hardware_choice and config["hardware"] != hardware_choice:
                raise ProviderError(
                    f"{served.base} is already served on {config['hardware']} ({server.path}); "
                    f"stop its deployments first to serve it on {hardware_choice}",
                    code="conflict",
                )
            server.write_adapters(wanted)
            if not alive:
                self._start(served, server, hardware_choice)
            elif served.adapter:
                health = self.health(server)
                if health.ready and served.name not in health.names:
                    self._load(server, served)
        if not wait:
            return self._deployment(served, server, "Creating")
        self._wait_ready(served, server)
        return self._deployment(served, server, "Succeeded")

    def _start(self, served: Served, server: ServerDir, hardware_choice: str | None) -> None:
        choice = hardware_choice or ("cuda:0" if hardware.gpus() else "cpu")
        env = dict(os.environ)
        env.update(_device_env(choice))
        root = str(Path(__file__).resolve().parents[3])  # this checkout's packages
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        if served.adapter and not vllm_can_serve(served.adapter):
            backend, why = "transformers", "vLLM serves plain LoRA only, not this adapter's method"
        else:
            backend, why = choose_backend(choice, importlib.util.find_spec("vllm") is not None)
        base_name = plan_for(served.base).name
        server.port_path.unlink(missing_ok=True)
        config: dict[str, Any] = {
            "base": served.base,
            "base_name": base_name,
            "backend": backend,
            "hardware": choice,
            "torch_threads": self.torch_threads,
            "started_at": datetime.now(UTC).isoformat(),
        }
        if backend == "vllm":
            port = _free_port()
            server.write_port(port)
            adapters = {k: v for k, v in server.read_adapters().items() if v}
            ranks = [
                json.loads((Path(p) / "adapter_config.json").read_text())["r"]
                for p in adapters.values()
            ]
            command = vllm_command(
                served.base,
                base_name,
                adapters,
                ranks,
                port,
                executable=_vllm_executable(self.python),
            )
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        else:
            command = [self.python, "-m", "providers.local.serving.app", str(server.path)]
        gpu_uuid = _gpu_uuid(choice)
        if gpu_uuid:
            config["devices"] = [gpu_uuid]
        with self._gpu_taken(gpu_uuid, served):
            server.write_config(config)
            self._launch(server, command, env, backend, why, choice, served)

    @contextlib.contextmanager
    def _gpu_taken(self, gpu_uuid: str | None, served: Served) -> Iterator[None]:
        """Hold the device assignment lock while a server on ``gpu_uuid`` starts, after
        making sure no training job or other server holds that GPU (its pid is written
        before the lock is let go, so the next launch sees it taken)."""
        if gpu_uuid is None or self.jobs_dir is None:
            yield
            return
        with devices.assignment_lock(self.jobs_dir):
            holder = devices.holders(self.jobs_dir).get(gpu_uuid)
            if holder is not None:
                raise ProviderError(
                    f"cannot serve {served.base} on that GPU: {holder.describe()} holds it; "
                    "choose another with --hardware (ftm deployments hardware MODEL lists "
                    "them) or wait for it to end",
                    code="no_free_gpu",
                )
            yield

    def _launch(
        self,
        server: ServerDir,
        command: list[str],
        env: dict[str, str],
        backend: str,
        why: str,
        choice: str,
        served: Served,
    ) -> None:
        with open(server.log_path, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(
                f"{stamp} ftm: serving {served.base} with {backend} ({why}) on {choice}\n".encode()
            )
            log.write(f"{stamp} ftm: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(server.path),
                env=env,
                start_new_session=True,  # outlives ftm's command; stopped by its group
            )
        server.write_pid(process.pid)

    def _wait_ready(self, served: Served, server: ServerDir) -> None:
        """Until the server answers /health and lists ``served``; a server that dies or
        is not ready in time is reported with the end of its log (and a late one stopped)."""
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if not server.worker_alive():
                raise ProviderError(
                    f"the local server for {served.base} exited before it was ready; last "
                    f"lines of {server.log_path}:\n{server.log_tail(LOG_TAIL_LINES)}",
                    code="server_failed",
                )
            state = self.health(server)
            if state.ready and served.name in state.names:
                return
            if state.ready and served.adapter:  # it loaded before this adapter was added
                self._load(server, served)
                continue
            if time.monotonic() > deadline:
                tail = server.log_tail(LOG_TAIL_LINES)
                self._terminate(server)
                raise ProviderError(
                    f"the local server for {served.base} was not ready within "
                    f"{self.ready_timeout_s:g} s and was stopped; last lines of "
                    f"{server.log_path}:\n{tail}",
                    code="server_timeout",
                )
            self.sleep(0.25)

    def status(self, deployment: Deployment) -> Deployment:
        """Succeeded (answering under its name), Creating (loading), Stopped (stopped by
        ftm) or Failed (its server died while it was deployed)."""
        server, served = self._locate(deployment)
        deployed = served.name in server.read_adapters()
        if not deployed:
            state = "Stopped"
        elif not server.worker_alive():
            state = "Failed"
        else:
            health = self.health(server)
            state = "Succeeded" if served.name in health.names else "Creating"
        return self._deployment(served, server, state)

    def stop(self, deployment: Deployment) -> Deployment:
        """Stop serving it; the server stops with its last deployment."""
        server, served = self._locate(deployment)
        with server.locked():
            wanted = server.read_adapters()
            wanted.pop(served.name, None)
            server.write_adapters(wanted)
            if not wanted:
                self._terminate(server)
            elif served.adapter and served.name in self.health(server).names:
                self._post(server, "unload_lora_adapter", {"lora_name": served.name})
        return self._deployment(served, server, "Stopped")

    def delete(self, deployment: Deployment) -> None:
        """Stop it and forget it: the server's directory goes with its last deployment."""
        server, _ = self._locate(deployment)
        if not server.path.is_dir():
            return
        self.stop(deployment)
        with server.locked():
            if not server.read_adapters() and not server.worker_alive():
                shutil.rmtree(server.path, ignore_errors=True)

    def _locate(self, deployment: Deployment) -> tuple[ServerDir, Served]:
        served = plan_for(deployment.model)
        path = Path(deployment.remote_id) if deployment.remote_id else self.root / served.server_key
        return ServerDir(path), served

    def _terminate(self, server: ServerDir) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after the
        grace period."""
        if not server.signal_worker(signal.SIGTERM):
            return
        deadline = time.monotonic() + self.stop_grace_s
        while server.worker_alive() and time.monotonic() < deadline:
            self.sleep(0.1)
        if server.worker_alive():
            server.signal_worker(signal.SIGKILL)
            while server.worker_alive() and time.monotonic() < deadline + 5:
                self.sleep(0.05)


def _vllm_executable(python: str) -> str:
    """The ``vllm`` script beside ``python`` (its environment's), else on PATH."""
    beside = Path(python).parent / "vllm"
    return str(beside) if beside.is_file() else (shutil.which("vllm") or "vllm")
