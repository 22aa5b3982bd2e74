"""Minimal stand-ins for `app.gateway.routing` and `app.gateway.request_log` (the routing
slice of issue 13 builds the real ones in parallel), written to their agreed interface.

`install()` puts them in place ONLY where the real module is missing, so once the real
modules are merged the gateway tests and benchmarks run against them unchanged. The
stand-in route is the plain one (no canary, no shadow config): one read of who holds the
alias now; the stand-in log writes `GatewayRequest` rows from a background thread.
"""

from __future__ import annotations

import importlib.util
import queue
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from db.engine import read_session, write_session
from db.models import Alias, GatewayRequest, Promotion
from providers.types import Deployment


@dataclass(frozen=True)
class Target:
    task: str
    alias: str
    provider: str
    model: str
    model_kind: str
    base_model: str | None
    promotion_id: int
    deployment_id: int | None
    deployment: Deployment | None
    needs_deployment: bool


@dataclass(frozen=True)
class RoutePlan:
    task: str
    alias: str
    answer: Target
    route: str
    shadow: Target | None


class UnknownModel(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def served_models(engine) -> list[str]:
    with read_session(engine) as session:
        rows = session.exec(select(Alias.task, Alias.alias).order_by(Alias.task, Alias.alias))
        return [f"{task}:{alias}" for task, alias in rows]


def plan(engine, requested_model: str, draw: float | None = None) -> RoutePlan:
    task, _, alias = requested_model.partition(":")
    alias = alias or "production"
    with read_session(engine) as session:
        row = session.exec(
            select(Promotion)
            .join(Alias, Alias.promotion_id == Promotion.id)
            .where(Alias.task == task, Alias.alias == alias)
        ).first()
    if row is None:
        known = ", ".join(served_models(engine)) or "none yet (promote a model first)"
        raise UnknownModel(f"no alias {task}:{alias}; the gateway serves: {known}")
    target = Target(
        task, alias, row.provider, row.model, row.model_kind, row.base_model, row.id,
        None, None, False,
    )  # fmt: skip
    return RoutePlan(task, alias, target, "primary", None)


class RequestLog:
    """Writes entries in batches from a thread; `record` never blocks."""

    def __init__(self, engine, *, flush_interval_s: float = 0.25, max_batch: int = 500) -> None:
        self.engine, self.flush_interval_s, self.max_batch = engine, flush_interval_s, max_batch
        self.shadows: list[dict[str, Any]] = []
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def record(self, entry: dict) -> None:
        self._queue.put(entry)

    def record_shadow(self, **answer: Any) -> None:
        self.shadows.append(answer)

    def _run(self) -> None:
        # Written every flush interval, as the real log batches: what is recorded just
        # before a stop is written only by `close`.
        while True:
            stopping = self._stop.wait(self.flush_interval_s)
            batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if batch:
                with write_session(self.engine) as session:
                    session.add_all([GatewayRequest(**entry) for entry in batch])
            for _ in batch:
                self._queue.task_done()
            if stopping:
                return

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def install() -> None:
    """Put the stand-ins where the real modules are missing (and only there)."""
    for name, attributes in (
        ("app.gateway.routing", (Target, RoutePlan, UnknownModel, plan, served_models)),
        ("app.gateway.request_log", (RequestLog,)),
    ):
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name, "stand-in: see tests/gateway/serve_standins.py")
        for attribute in attributes:
            setattr(module, attribute.__name__, attribute)
        sys.modules[name] = module
        import app.gateway

        setattr(app.gateway, name.rsplit(".", 1)[1], module)
