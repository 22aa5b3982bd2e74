"""The gateway's planner keeps its reads only until the database changes: a promotion
committed elsewhere is what the next plan sees, while plans between commits read
nothing, and the canary is still drawn per request."""

from __future__ import annotations

from app.database import get_engine
from app.gateway import policy, routing
from app.gateway.route_cache import RouteCache
from tests.gateway.traffic_helpers import TASK, eval_runs, promote


def test_reads_are_kept_between_commits_and_dropped_by_one(monkeypatch) -> None:
    engine = get_engine()
    runs = eval_runs("good", "candidate")
    promote(runs["good"])
    promote(runs["candidate"], "staging")
    reads = []
    real = routing.read_routes

    def counted(*args, **kw):
        reads.append(args[1:])
        return real(*args, **kw)

    monkeypatch.setattr(routing, "read_routes", counted)
    cache = RouteCache(engine)
    try:
        assert cache(engine, TASK).answer.model == "good"
        assert cache(engine, TASK).answer.model == "good"
        assert cache(engine, f"{TASK}:staging").answer.model == "candidate"
        assert reads == [(TASK, "production"), (TASK, "staging")]  # one read each

        promote(runs["candidate"])  # a commit on another connection
        assert cache(engine, TASK).answer.model == "candidate"  # the very next plan
        assert len(reads) == 3

        policy.set_canary(engine, TASK, 50, from_alias="staging")
        promote(runs["good"], "staging")
        drawn = {cache(engine, TASK, draw=d).route for d in (0.1, 0.9, 0.2, 0.7)}
        assert drawn == {"canary", "primary"}  # drawn per request from one read
        assert len(reads) == 4
    finally:
        cache.close()
