"""Run the Together emulator: :class:`TogetherSandboxServer` serves it on a loopback port
in a background thread, like :class:`app.sandbox.server.SandboxServer` for OpenAI.

    with TogetherSandboxServer(port=0, seconds_per_step=0.01) as server:
        client = together.Together(base_url=server.base_url, api_key=server.api_key)
        ...
        server.advance(5.0)            # move the sandbox clock on
        server.faults = FaultPlan().next(2, "rate_limit", "jobs.create")
        len(server.state.jobs)         # inspect what the service holds
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from starlette.types import ASGIApp

from app.sandbox.api import Sandbox
from app.sandbox.clock import SandboxClock
from app.sandbox.faults import FaultPlan
from app.sandbox.lifecycle import Timing
from app.sandbox.server import SandboxServer
from app.sandbox.together.api import create_app
from app.sandbox.together.state import DEFAULT_CREDIT_LIMIT_DOLLARS, TogetherState
from providers.together.config import SANDBOX_API_KEY

DEFAULT_API_KEY = SANDBOX_API_KEY
"""The key the emulator accepts unless told another: the one the Together provider sends
in sandbox mode (providers/together/config.py), so the two agree by construction."""


def build_state(
    *,
    seconds_per_step: float,
    files_dir: Path,
    start: datetime | float | None = None,
    frozen: bool = False,
    seed: int | None = None,
    validation_s: float | None = None,
    queue_s: float | None = None,
    state_file: Path | None = None,
    credit_limit_dollars: float = DEFAULT_CREDIT_LIMIT_DOLLARS,
    weights_dir: Path | None = None,
    serve_fine_tunes: bool = False,
) -> TogetherState:
    """A fresh (or reloaded, with ``state_file``) Together emulator state."""
    if seconds_per_step < 0:
        raise ValueError("seconds_per_step must not be negative")
    return TogetherState(
        clock=SandboxClock(start, frozen=frozen),
        timing=Timing(seconds_per_step, validation_s, queue_s),
        files_dir=files_dir,
        seed=seed,
        state_file=state_file,
        credit_limit_dollars=credit_limit_dollars,
        weights_dir=weights_dir,
        serve_fine_tunes=serve_fine_tunes,
    )


class TogetherSandboxServer(SandboxServer):
    """The Together emulator on ``host:port`` (port 0: a free one) in a background thread.

    Same arguments as :class:`SandboxServer` where they apply (no OpenAI wind-down), plus
    ``credit_limit_dollars``: ``estimate-price`` refuses jobs dearer than this;
    ``weights_dir``: where downloadable weights are built and cached (default: beside the
    uploaded files; tests share one across servers to build the tiny base model once);
    ``serve_fine_tunes``: finished fine-tunes answer chats as if each had a running
    dedicated endpoint (app/sandbox/together/serving.py), instead of the refusal.
    ``api_key``: the one bearer key it accepts (any other is answered 401, as Together
    answers an invalid key).
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
        seed: int | None = None,
        validation_s: float | None = None,
        queue_s: float | None = None,
        data_dir: Path | None = None,
        state_file: Path | None = None,
        credit_limit_dollars: float = DEFAULT_CREDIT_LIMIT_DOLLARS,
        weights_dir: Path | None = None,
        serve_fine_tunes: bool = False,
        api_key: str = DEFAULT_API_KEY,
    ) -> None:
        files_dir = self._set_up(host, port, data_dir, state_file, "ftm-together-sandbox-")
        self.state = build_state(  # type: ignore[assignment]  # same duck-typed surface
            seconds_per_step=seconds_per_step,
            files_dir=files_dir,
            start=start,
            frozen=frozen,
            seed=seed,
            validation_s=validation_s,
            queue_s=queue_s,
            state_file=state_file,
            credit_limit_dollars=credit_limit_dollars,
            weights_dir=weights_dir,
            serve_fine_tunes=serve_fine_tunes,
        )
        self._sandbox = Sandbox(self.state, faults)  # type: ignore[arg-type]
        self.api_key = api_key

    @property
    def clock(self) -> SandboxClock:
        return self.state.clock

    @property
    def base_url(self) -> str:
        """The root, without ``/v1``: the together SDK (3.x) puts ``/v1`` in its paths."""
        if self.port is None:
            raise RuntimeError("the Together sandbox server is not started")
        return f"http://{self.host}:{self.port}"

    def _create_app(self) -> ASGIApp:
        return create_app(self._sandbox, self.api_key)
