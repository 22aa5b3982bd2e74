"""Dedicated endpoints in the Together emulator: a record, its state on the sandbox clock
and its bill.

An endpoint asked to run is ``PENDING`` for 2 training steps' worth of sandbox time, then
``STARTING`` for 3 more, then ``STARTED``, when chat through its name answers. ``PATCH``
with ``state: STOPPED`` stops it at once; ``STARTED`` starts it again through the same
phases. It is billed per started minute of each run counted from ``STARTED`` (the replicas
are up) until stopped, at the hardware's ``cents_per_minute`` (hardware.py) times its
``min_replicas`` (autoscaling above the minimum is not emulated, nor ``inactive_timeout``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from app.sandbox.errors import invalid
from app.sandbox.together.hardware import HARDWARE, hardware
from app.sandbox.together.records import iso

PENDING_STEPS = 2
STARTING_STEPS = 3
RUN_STATES = ("STARTED", "STOPPED")


@dataclass
class Endpoint:
    id: str
    name: str
    display_name: str
    model: str
    hardware: str
    min_replicas: int
    max_replicas: int
    created_at: float
    wanted: str
    """``STARTED`` or ``STOPPED``: what the owner last asked for."""
    started_at: float | None
    """When the current run was asked for (None while stopped)."""
    billed_minutes: int = 0
    """Minutes billed for the runs already stopped."""

    def state(self, now: float, step_s: float) -> str:
        if self.wanted == "STOPPED" or self.started_at is None:
            return "STOPPED"
        elapsed = now - self.started_at
        if elapsed < PENDING_STEPS * step_s:
            return "PENDING"
        if elapsed < (PENDING_STEPS + STARTING_STEPS) * step_s:
            return "STARTING"
        return "STARTED"

    def _run_minutes(self, now: float, step_s: float) -> int:
        """Started minutes of the current run so far (0 before it is STARTED)."""
        if self.state(now, step_s) != "STARTED" or self.started_at is None:
            return 0
        up_since = self.started_at + (PENDING_STEPS + STARTING_STEPS) * step_s
        return math.ceil((now - up_since) / 60) if now > up_since else 0

    def billed_cents(self, now: float, step_s: float) -> float:
        """What the endpoint has cost so far, in cents."""
        minutes = self.billed_minutes + self._run_minutes(now, step_s)
        return minutes * HARDWARE[self.hardware].cents_per_minute * self.min_replicas

    def start(self, now: float) -> None:
        if self.wanted != "STARTED":
            self.wanted, self.started_at = "STARTED", now

    def stop(self, now: float, step_s: float) -> None:
        if self.wanted != "STOPPED":
            self.billed_minutes += self._run_minutes(now, step_s)
            self.wanted, self.started_at = "STOPPED", None

    def to_api(self, now: float, step_s: float) -> dict[str, Any]:
        """``DedicatedEndpoint``."""
        return {
            "object": "endpoint",
            "id": self.id,
            "name": self.name,
            "display_name": self.display_name,
            "model": self.model,
            "hardware": self.hardware,
            "type": "dedicated",
            "owner": "sandbox",
            "state": self.state(now, step_s),
            "autoscaling": {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas},
            "created_at": iso(self.created_at),
        }

    def to_list_api(self, now: float, step_s: float) -> dict[str, Any]:
        """``ListEndpoint``: the summary ``GET /endpoints`` shows."""
        full = self.to_api(now, step_s)
        keys = ("object", "id", "name", "model", "type", "owner", "state", "created_at")
        return {key: full[key] for key in keys}

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Endpoint:
        return cls(**data)


def autoscaling(body: dict[str, Any], required: bool) -> tuple[int, int] | None:
    """(min, max) replicas from ``body["autoscaling"]``, checked."""
    value = body.get("autoscaling")
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise invalid(
            "Missing required parameter: 'autoscaling' ({'min_replicas': N, 'max_replicas': M}).",
            param="autoscaling",
        )
    low, high = value.get("min_replicas"), value.get("max_replicas")
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
        raise invalid(
            "autoscaling needs integers 1 <= min_replicas <= max_replicas, got "
            f"{low!r} and {high!r}.",
            param="autoscaling",
        )
    return low, high


def wanted_state(body: dict[str, Any], default: str | None) -> str | None:
    value = body.get("state", default)
    if value is not None and value not in RUN_STATES:
        raise invalid(f"state must be STARTED or STOPPED, got {value!r}.", param="state")
    return value


def check_create(body: Any) -> tuple[str, str, int, int, str]:
    """(model, hardware, min, max replicas, state) of a ``CreateEndpointRequest``."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model'.", param="model")
    hw = hardware(body.get("hardware"))
    replicas = autoscaling(body, required=True)
    assert replicas is not None
    state = wanted_state(body, "STARTED")
    assert state is not None
    return model, hw.id, replicas[0], replicas[1], state
