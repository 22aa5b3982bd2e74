"""The emulated control plane's deployments: created by PUT, ``Creating`` for a while on
the sandbox clock, then ``Succeeded``; a chat through one answers only then.

Kept in ``deployments.json`` beside the sandbox state when it persists.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.sandbox.clock import SandboxClock


@dataclass
class DeploymentRecord:
    name: str
    model: str
    sku: str
    capacity: int
    created_at: float
    """Sandbox time of the first PUT."""


class Deployments:
    """Deployments by name, with readiness on the sandbox clock."""

    def __init__(
        self, clock: SandboxClock, ready_after_s: float, state_file: Path | None = None
    ) -> None:
        self.clock = clock
        self.ready_after_s = ready_after_s
        self.state_file = state_file
        self.records: dict[str, DeploymentRecord] = {}
        self.puts = 0
        """PUT requests answered (tests check a deployment is requested once)."""
        self._lock = threading.Lock()
        if state_file is not None and state_file.exists():
            raw = json.loads(state_file.read_text(encoding="utf-8"))
            self.records = {r["name"]: DeploymentRecord(**r) for r in raw}

    def _save(self) -> None:
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            payload = [asdict(r) for r in self.records.values()]
            self.state_file.write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def state_of(self, record: DeploymentRecord) -> str:
        ready = self.clock.now() - record.created_at >= self.ready_after_s
        return "Succeeded" if ready else "Creating"

    def put(self, name: str, model: str, sku: str, capacity: int) -> tuple[DeploymentRecord, bool]:
        """Create or update; returns (the record, whether it was created)."""
        with self._lock:
            self.puts += 1
            found = self.records.get(name)
            if found is not None:
                found.model, found.sku, found.capacity = model, sku, capacity
                self._save()
                return found, False
            record = DeploymentRecord(name, model, sku, capacity, self.clock.now())
            self.records[name] = record
            self._save()
            return record, True

    def get(self, name: str) -> DeploymentRecord | None:
        with self._lock:
            return self.records.get(name)

    def delete(self, name: str) -> bool:
        with self._lock:
            gone = self.records.pop(name, None) is not None
            self._save()
            return gone

    def ready_model(self, name: str) -> str | None:
        """The model a chat through deployment ``name`` reaches; None unless it is ready."""
        record = self.get(name)
        if record is None or self.state_of(record) != "Succeeded":
            return None
        return record.model

    def resource(self, record: DeploymentRecord, path: str) -> dict[str, Any]:
        """The control plane's deployment object."""
        return {
            "id": path,
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "name": record.name,
            "sku": {"name": record.sku, "capacity": record.capacity},
            "properties": {
                "model": {"format": "OpenAI", "name": record.model, "version": "1"},
                "provisioningState": self.state_of(record),
                "versionUpgradeOption": "NoAutoUpgrade",
            },
        }
