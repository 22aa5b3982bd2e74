"""The gateway's planner: `app.gateway.routing.plan`, with the database reads kept until
the database changes.

A plan is three indexed reads and a draw. The reads (`routing.read_routes`) are kept per
``TASK:ALIAS`` while `app.gateway.changes.DataVersion` says no commit happened since;
the draw (`routing.decide`) is made for every request, so a canary's share stays per
request. A promotion, rollback, policy change or deployment change commits, so the next
request reads afresh: the cache never serves a replaced holder. Busy gateways commit
their request log a few times a second, which empties the cache as often: still most
requests are answered from it. Databases without the counter read every time.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from app.gateway import changes, routing


class RouteCache:
    """Callable as a planner: ``cache(engine, requested_model, draw=None) -> RoutePlan``."""

    def __init__(self, engine: Engine) -> None:
        self._version = changes.for_engine(engine)
        self._routes: dict[tuple[str, str], routing.Routes] = {}
        self._lock = threading.Lock()

    def __call__(
        self, engine: Engine, requested_model: str, draw: float | None = None
    ) -> routing.RoutePlan:
        task, alias = routing.parse(requested_model)
        if self._version is None:
            return routing.decide(routing.read_routes(engine, task, alias), draw)
        with self._lock:
            if self._version.changed():
                self._routes.clear()
            routes = self._routes.get((task, alias))
        if routes is None:
            routes = routing.read_routes(engine, task, alias)  # UnknownModel is not kept
            with self._lock:
                self._routes[(task, alias)] = routes
        return routing.decide(routes, draw)

    def close(self) -> None:
        if self._version is not None:
            self._version.close()
