"""Fault injection for the emulator, per route, by probability (seeded) or by count.

A :class:`FaultPlan` is a list of :class:`FaultRule` checked in order on every request;
the first rule that matches the route and fires decides the fault. Routes are operation
names (see :data:`ROUTES`) matched as shell-style globs, so ``"jobs.*"`` covers every
fine-tuning job route and ``"*"`` every route.

Kinds:
- ``rate_limit``: 429 with ``Retry-After`` (whole seconds) and ``retry-after-ms``;
  code ``rate_limit_exceeded``.
- ``server_error``: 500. ``unavailable``: 503.
- ``slow``: wait ``delay_s`` and then answer normally (the request still takes effect
  even if the client gave up waiting, as with the real service).
- ``drop_before``: close the connection without handling the request.
- ``drop_after``: handle the request (a job IS created), then close the connection
  without answering: the client sees a connection error.
- ``error_after``: handle the request (a job IS created), then answer 500 anyway, as a
  service does when it fails after acting: the client sees an answered server error.

Plans are set on a running server (``server.faults = FaultPlan(...)``) or loaded from
JSON for ``ftm sandbox --faults FILE``::

    {"seed": 7, "rules": [
        {"route": "jobs.create", "kind": "drop_after", "count": 2},
        {"route": "jobs.*", "kind": "rate_limit", "probability": 0.2, "retry_after_s": 0.05}
    ]}
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "unavailable",
    "slow",
    "drop_before",
    "drop_after",
    "error_after",
)

ROUTES = (
    "files.create",
    "files.list",
    "files.retrieve",
    "files.delete",
    "files.content",
    "jobs.create",
    "jobs.list",
    "jobs.retrieve",
    "jobs.cancel",
    "jobs.pause",
    "jobs.resume",
    "jobs.events",
    "jobs.checkpoints",
    "models.list",
    "models.retrieve",
    "models.delete",
    "chat.completions",
    # The Together emulator's own routes (it shares the names above where they match).
    "jobs.estimate_price",
    "jobs.limits",
    "endpoints.list",
    "endpoints.create",
    "endpoints.retrieve",
    "endpoints.update",
    "endpoints.delete",
    "hardware.list",
    # The Azure-shaped emulator's control plane (its data plane shares the names above).
    "deployments.put",
    "deployments.get",
    "deployments.delete",
    "deployments.list",
    "jobs.download",
    "jobs.delete",
    "jobs.metrics",
)


class FaultPlanError(ValueError):
    """A fault plan that cannot be used; the message says which rule and why."""


@dataclass
class FaultRule:
    """One kind of fault on the routes matching ``route``.

    With ``count`` the rule fires on the next ``count`` matching requests (then never);
    with ``probability`` each matching request draws from the plan's seeded generator.
    Both: each draw that fires uses one of the ``count``. Neither: every request.
    """

    route: str
    kind: str
    probability: float | None = None
    count: int | None = None
    retry_after_s: float = 1.0
    """For ``rate_limit``: the wait the 429 asks for."""
    delay_s: float = 2.0
    """For ``slow``: how long to wait before answering."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultPlanError(
                f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}"
            )
        if not any(fnmatch.fnmatchcase(r, self.route) for r in ROUTES):
            raise FaultPlanError(
                f"route {self.route!r} matches no route; routes are {', '.join(ROUTES)}"
            )
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultPlanError(f"probability {self.probability} is not between 0 and 1")
        if self.count is not None and self.count < 0:
            raise FaultPlanError(f"count {self.count} is negative")
        if self.retry_after_s < 0 or self.delay_s < 0:
            raise FaultPlanError("retry_after_s and delay_s must not be negative")

    def matches(self, route: str) -> bool:
        return fnmatch.fnmatchcase(route, self.route)


@dataclass
class FaultPlan:
    """The faults a server injects. Thread-safe; counts what it injected."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int | None = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: Counter[tuple[str, str]] = Counter()
        """(route, kind) -> how many faults were injected."""

    def add(self, route: str, kind: str, **options: Any) -> FaultPlan:
        """Append a rule; returns the plan so calls chain."""
        rule = FaultRule(route, kind, **options)
        with self._lock:
            self.rules.append(rule)
        return self

    def next(self, count: int, kind: str, route: str = "*", **options: Any) -> FaultPlan:
        """Fault the next ``count`` requests to ``route`` with ``kind``."""
        return self.add(route, kind, count=count, **options)

    def decide(self, route: str) -> FaultRule | None:
        """The fault for one request to ``route``, or None; consumes counts and draws."""
        with self._lock:
            for rule in self.rules:
                if not rule.matches(route) or rule.count == 0:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                self.injected[(route, rule.kind)] += 1
                return rule
        return None

    def total_injected(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(n for (_, k), n in self.injected.items() if kind is None or k == kind)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
            raise FaultPlanError('a fault plan is an object: {"seed": N, "rules": [...]}')
        rules = []
        for index, raw in enumerate(data.get("rules", [])):
            if not isinstance(raw, dict):
                raise FaultPlanError(f"rules[{index}] is not an object")
            unknown = set(raw) - {f for f in FaultRule.__dataclass_fields__}
            if unknown:
                raise FaultPlanError(
                    f"rules[{index}] has unknown keys: {', '.join(sorted(unknown))}"
                )
            if "route" not in raw or "kind" not in raw:
                raise FaultPlanError(f"rules[{index}] needs a 'route' and a 'kind'")
            try:
                rules.append(FaultRule(**raw))
            except FaultPlanError as exc:
                raise FaultPlanError(f"rules[{index}]: {exc}") from None
        return cls(rules=rules, seed=data.get("seed", 0))

    @classmethod
    def from_file(cls, path: str | Path) -> FaultPlan:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise FaultPlanError(f"cannot read fault plan {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise FaultPlanError(f"{path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except FaultPlanError as exc:
            raise FaultPlanError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [asdict(r) for r in self.rules]}
