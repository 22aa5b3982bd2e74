"""Running the gateway: in the foreground for `ftm serve` (`serve_forever`), or on a
loopback port in a background thread for tests and benchmarks (`GatewayServer`)."""

from __future__ import annotations

import gc
import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from app.gateway.server import SHUTDOWN_GRACE_S, Gateway

DEFAULT_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(gateway: Gateway, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        gateway.app,
        log_level=log_level,
        lifespan="on",
        access_log=False,  # every request is in the request log; a line each is noise
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


def serve_forever(gateway: Gateway, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; then the request log is flushed
    and closed (the app's shutdown).

    Raises:
        OSError: the address could not be bound.
    """
    from app.sandbox.server import bind_socket

    sock = bind_socket(host, port)
    # Listening before the URL is printed: a client that reads it and connects at once
    # waits in the backlog until the server accepts, instead of being refused.
    sock.listen(2048)
    # Everything imported so far lives as long as the process: frozen out of the garbage
    # collector's view, a full collection no longer walks it (each one stalled every
    # request in flight for tens of milliseconds: bench/gateway_overhead.py's p99).
    gc.collect()
    gc.freeze()
    on_ready(f"http://{host}:{sock.getsockname()[1]}/v1")
    _ForegroundServer(_config(gateway, "warning")).run(sockets=[sock])


class _ForegroundServer(uvicorn.Server):
    """Stops on SIGINT or SIGTERM and returns. uvicorn's own raises the signal again once
    it has shut down, which would end `ftm serve` by that signal (or a KeyboardInterrupt
    traceback) after a clean, flushed stop."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


class GatewayServer:
    """The gateway on a loopback port in a background thread (tests, benchmarks)::

    with GatewayServer(Gateway(engine)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=key)
    """

    def __init__(self, gateway: Gateway, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.gateway, self.host, self._port = gateway, host, port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> GatewayServer:
        from app.sandbox.server import bind_socket

        sock = bind_socket(self.host, self._port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.gateway, "warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="ftm-gateway", daemon=True
        )
        self._thread.start()
        for _ in range(1000):
            if self._server.started or not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the gateway did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
