"""Run the emulator: :class:`SandboxServer` serves it on a loopback port in a background
thread (for tests and embedding); :func:`serve_forever` in the foreground (``ftm sandbox``).

    with SandboxServer(port=0, seconds_per_step=0.01) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key)
        ...
        server.advance(5.0)            # move the sandbox clock on
        server.faults = FaultPlan().next(2, "rate_limit", "jobs.create")
        len(server.state.jobs)         # inspect what the service holds
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from app.sandbox.api import Sandbox, create_app
from app.sandbox.clock import SandboxClock
from app.sandbox.faults import FaultPlan
from app.sandbox.lifecycle import Timing
from app.sandbox.state import SandboxState
from app.sandbox.wind_down import OrgHistory, WindDown

SERVICE_SUNSET: date = WindDown.declared().final_cutoff
"""The last day the real service accepts new fine-tuning jobs (the OpenAI provider's
declared lifecycle, providers/openai/lifecycle.toml)."""
DEFAULT_API_KEY = "sk-sandbox-key"
STARTUP_TIMEOUT_S = 10.0


def build_state(
    *,
    seconds_per_step: float,
    files_dir: Path,
    start: datetime | float | None = None,
    frozen: bool = False,
    sunset: date | None = None,
    org: str | OrgHistory | None = None,
    seed: int | None = None,
    validation_s: float | None = None,
    queue_s: float | None = None,
    state_file: Path | None = None,
    base64_result_files: bool = False,
) -> SandboxState:
    """A fresh (or reloaded, with ``state_file``) sandbox state."""
    if seconds_per_step < 0:
        raise ValueError("seconds_per_step must not be negative")
    stages = WindDown.declared() if org is not None else None
    if isinstance(org, str):
        org = OrgHistory.profile(org, stages)
    state = SandboxState(
        clock=SandboxClock(start, frozen=frozen),
        timing=Timing(seconds_per_step, validation_s, queue_s),
        files_dir=files_dir,
        sunset=sunset,
        wind_down=stages,
        org_history=org,
        seed=seed,
        state_file=state_file,
    )
    state.base64_result_files = base64_result_files
    return state


class SandboxServer:
    """The emulator on ``host:port`` (port 0: a free one) in a background thread.

    Args:
        port: TCP port; 0 picks a free one (read ``base_url``).
        seconds_per_step: sandbox seconds per training step (the accelerated clock).
        faults: the initial fault plan; settable later through ``server.faults``.
        start: the sandbox clock's starting time (default: now).
        frozen: freeze the clock; only ``advance`` moves it (deterministic tests).
        sunset: refuse job creation once the clock's date is after this date. Off by
            default here so tests do not depend on the real date; pass
            ``SERVICE_SUNSET`` to emulate the real service's end.
        org: emulate the earlier stages of the service's wind-down for an organization
            with this history: a profile name (``active``, ``inactive``, ``new``; see
            `app.sandbox.wind_down`) or an `OrgHistory`. None: an organization those
            stages spared (only ``sunset`` applies).
        seed: seeds ids and job seeds, for reproducible runs.
        validation_s, queue_s: phase lengths (defaults: 3 and 2 steps' worth).
        data_dir: where uploaded files are kept (default: beside ``state_file``, else a
            temporary directory removed on stop).
        state_file: persist the state there and reload it on start.
        base64_result_files: serve result CSVs base64-encoded, as the live service has
            been seen to (default: plain CSV).
    """

    def __init__(
        self,
        port: int = 0,
        seconds_per_step: float = 0.01,
        faults: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        start: datetime | float | None = None,
        frozen: bool = False,
        sunset: date | None = None,
        org: str | OrgHistory | None = None,
        seed: int | None = None,
        validation_s: float | None = None,
        queue_s: float | None = None,
        data_dir: Path | None = None,
        state_file: Path | None = None,
        base64_result_files: bool = False,
    ) -> None:
        files_dir = self._set_up(host, port, data_dir, state_file, "ftm-sandbox-")
        self.state = build_state(
            seconds_per_step=seconds_per_step,
            files_dir=files_dir,
            start=start,
            frozen=frozen,
            sunset=sunset,
            org=org,
            seed=seed,
            validation_s=validation_s,
            queue_s=queue_s,
            state_file=state_file,
            base64_result_files=base64_result_files,
        )
        self._sandbox = Sandbox(self.state, faults)

    def _set_up(
        self, host: str, port: int, data_dir: Path | None, state_file: Path | None, prefix: str
    ) -> Path:
        """What every emulator's server shares; returns the directory for uploaded files
        (beside ``state_file``, else a temporary directory removed on stop)."""
        self.host = host
        self._requested_port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None and state_file is not None:
            data_dir = Path(state_file).parent
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
            data_dir = Path(self._tmp.name)
        self.api_key = DEFAULT_API_KEY
        """A key the emulator accepts (the OpenAI one: any ``sk-...`` key)."""
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        return Path(data_dir) / "files"

    # The fault plan lives on the app so a change applies to the very next request.
    @property
    def faults(self) -> FaultPlan | None:
        return self._sandbox.faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._sandbox.faults = plan

    @property
    def clock(self) -> SandboxClock:
        return self.state.clock

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the sandbox server is not started")
        return f"http://{self.host}:{self.port}/v1"

    def advance(self, seconds: float) -> float:
        """Move the sandbox clock forward; returns the new sandbox time."""
        return self.clock.advance(seconds)

    def _create_app(self) -> ASGIApp:
        """The ASGI app this server runs (the Together emulator's server overrides it)."""
        return create_app(self._sandbox)

    def start(self) -> SandboxServer:
        sock = bind_socket(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._create_app(),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="ftm-sandbox", daemon=True
        )
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(STARTUP_TIMEOUT_S / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the sandbox server did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.state.save()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: a free one).

    Raises OSError when the address is taken or cannot be bound.
    """
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket says it is TCP; without it every answer waits ~40 ms on Nagle's
    # algorithm and the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_forever(
    sock: socket.socket,
    state: SandboxState,
    faults: FaultPlan | None,
    app_factory: Callable[[Sandbox], ASGIApp] = create_app,
) -> None:
    """Serve on ``sock`` in the foreground until interrupted (Ctrl-C), then save the state.

    ``app_factory`` builds the app (the Together emulator passes its own)."""
    config = uvicorn.Config(
        app_factory(Sandbox(state, faults)),
        log_level="info",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        state.save()
