"""Run the Azure-shaped emulator: :class:`AzureSandboxServer`, like
:class:`app.sandbox.server.SandboxServer` (same state, clock and faults) but serving
Azure's data and control planes at its root.

    with AzureSandboxServer(port=0, seconds_per_step=0.01) as server:
        client = openai.AzureOpenAI(azure_endpoint=server.endpoint,
                                    api_version="2025-04-01-preview", api_key=server.api_key)
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from app.sandbox.azure.api import AzureSandbox, create_app
from app.sandbox.azure.deployments import Deployments
from app.sandbox.faults import FaultPlan
from app.sandbox.server import SandboxServer, build_state
from providers.azure.config import SANDBOX_API_KEY, SANDBOX_MANAGEMENT_TOKEN

DEPLOYMENT_STEPS = 5.0
"""A deployment provisions for this many training steps' worth of sandbox time."""


def make_sandbox(
    state: Any,
    faults: FaultPlan | None,
    seconds_per_step: float,
    deployments_file: Path | None = None,
    api_key: str = SANDBOX_API_KEY,
    management_token: str = SANDBOX_MANAGEMENT_TOKEN,
) -> AzureSandbox:
    deployments = Deployments(state.clock, DEPLOYMENT_STEPS * seconds_per_step, deployments_file)
    return AzureSandbox(state, deployments, api_key, management_token, faults)


class AzureSandboxServer(SandboxServer):
    """The Azure-shaped emulator on ``host:port`` in a background thread. Same arguments
    as :class:`SandboxServer` (its ``sunset`` is Azure's to pass), plus the key and token
    it accepts (defaults: the provider's sandbox constants)."""

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
        seed: int | None = None,
        data_dir: Path | None = None,
        state_file: Path | None = None,
        api_key: str = SANDBOX_API_KEY,
        management_token: str = SANDBOX_MANAGEMENT_TOKEN,
    ) -> None:
        files_dir = self._set_up(host, port, data_dir, state_file, "ftm-azure-sandbox-")
        self.state = build_state(
            seconds_per_step=seconds_per_step,
            files_dir=files_dir,
            start=start,
            frozen=frozen,
            sunset=sunset,
            seed=seed,
            state_file=state_file,
        )
        deployments_file = Path(state_file).with_name("deployments.json") if state_file else None
        self._sandbox = make_sandbox(
            self.state, faults, seconds_per_step, deployments_file, api_key, management_token
        )
        self.api_key = api_key
        self.management_token = management_token

    @property
    def deployments(self) -> Deployments:
        assert isinstance(self._sandbox, AzureSandbox)
        return self._sandbox.deployments

    @property
    def endpoint(self) -> str:
        """The resource endpoint (the SDK adds ``/openai`` itself)."""
        if self.port is None:
            raise RuntimeError("the Azure sandbox server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.endpoint

    def _create_app(self) -> ASGIApp:
        assert isinstance(self._sandbox, AzureSandbox)
        return create_app(self._sandbox)
