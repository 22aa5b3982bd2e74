"""The gateway's request log, written in batches by a background thread so a request never
waits on the database.

`RequestLog.record` only appends to an in-memory queue. A writer thread takes the queue
every ``flush_interval_s`` (sooner when ``max_batch`` entries wait) and writes it in one
transaction: the rows of ``gateway_requests`` and ``shadow_answers``, and the counters of
the deployments that answered (``requests_served``, ``last_request_at``: the idle stop
reads the latter).

Exactly once: rows are inserted with ``ON CONFLICT (request_id) DO NOTHING`` and the
deployment counters are bumped only for the rows that insert reports as new, in the same
transaction. A batch written twice (a retry after an error, a replay after a crash) logs
and counts nothing twice.

What a crash loses: the entries recorded since the last flush that committed, at most
``flush_interval_s`` worth of traffic and never more than ``max_pending`` (default
`MAX_PENDING`) entries. Beyond ``max_pending`` unwritten entries (the database is down or
too slow) new ones are dropped and counted (`dropped`, with a warning in the log) rather
than growing memory or blocking the caller. A database error does not stop the writer:
the batch stays queued and is tried again at the next flush.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from db.engine import writer
from db.models import Deployment, GatewayRequest, ShadowAnswer, utcnow
from db.portable import insert_ignoring

log = logging.getLogger("ftm.gateway.request_log")

MAX_PENDING = 20_000
"""Unwritten entries kept at most (requests and shadow pairs together): at 1,000 requests/s
that is 20 s of a database outage; a shadow pair keeps its messages and two answers, so
this bounds memory to tens of MB."""
FLUSH_INTERVAL_S = 0.25
"""How often the writer flushes (and so, at most, how much traffic a crash loses)."""

_REQUEST_COLUMNS = frozenset(c.name for c in GatewayRequest.__table__.columns) - {"id"}
_SHADOW_COLUMNS = frozenset(c.name for c in ShadowAnswer.__table__.columns) - {"id"}
_RETRYABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
"""Errors of the database being unreachable or busy: the batch is kept and tried again.
Any other error (a constraint a row breaks) is a bad row: the batch is written row by row
and the bad ones dropped, so one row cannot block the log forever."""


class RequestLog:
    """Batched, idempotent writer of the gateway's request log and shadow answers."""

    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_batch: int = 500,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.engine = engine
        # Take the writer lock at BEGIN, so a busy database is waited for (see
        # db/engine.py) rather than answered "locked".
        self._writer = writer(engine)
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._requests: deque[dict] = deque()
        self._shadows: deque[dict] = deque()
        self._lock = threading.Lock()  # guards the two queues and the counters
        self._write_lock = threading.Lock()  # one batch written at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0
        """Entries refused because ``max_pending`` were waiting, or rejected by the DB."""
        self.written = 0
        """Rows newly inserted (requests and shadow pairs)."""
        self.failed_flushes = 0
        self._thread = threading.Thread(target=self._run, name="ftm-request-log", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._requests) + len(self._shadows)

    def record(self, entry: dict) -> None:
        """Queue one request's log entry (`db.models.GatewayRequest` fields; unknown keys
        are ignored; ``request_id`` and ``created_at`` (an aware datetime, when the request
        arrived) are filled when absent). Never blocks on the database, never raises."""
        try:
            row = {k: v for k, v in entry.items() if k in _REQUEST_COLUMNS}
            row.setdefault("request_id", uuid.uuid4().hex)
            row.setdefault("created_at", utcnow())
            row.setdefault("route", "primary")
            row.setdefault("status_code", 0)
            self._enqueue(self._requests, row)
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self._drop(1, "an entry could not be queued")

    def record_shadow(
        self,
        *,
        request_id: str,
        task: str,
        alias: str,
        messages: Any,
        primary_provider: str | None,
        primary_model: str | None,
        primary_text: str | None,
        candidate_provider: str,
        candidate_model: str,
        candidate_text: str | None,
        candidate_latency_ms: float | None,
        candidate_status: int,
    ) -> None:
        """Queue one shadow pair (what production answered, what the candidate would
        have). ``messages``: the request's messages as JSON-able dicts. Never blocks on the
        database, never raises."""
        try:
            row = {
                "request_id": request_id,
                "created_at": utcnow(),
                "task": task,
                "alias": alias,
                "messages": list(messages) if messages is not None else None,
                "primary_provider": primary_provider,
                "primary_model": primary_model,
                "primary_text": primary_text,
                "candidate_provider": candidate_provider,
                "candidate_model": candidate_model,
                "candidate_text": candidate_text,
                "candidate_latency_ms": candidate_latency_ms,
                "candidate_status": int(candidate_status),
            }
            self._enqueue(self._shadows, row)
        except Exception:  # noqa: BLE001 - see record
            self._drop(1, "a shadow pair could not be queued")

    def flush(self) -> None:
        """Write everything queued now, in the caller's thread (batches of ``max_batch``).
        A database error leaves the entries queued for the next flush."""
        while True:
            with self._write_lock:
                requests, shadows = self._take()
                if not requests and not shadows:
                    return
                if not self._write(requests, shadows):
                    self._put_back(requests, shadows)
                    return

    def close(self) -> None:
        """Stop the writer thread after a last flush."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(5.0, self.flush_interval_s * 4))
        self.flush()

    # ------------------------------------------------------------------ internals

    def _enqueue(self, queue: deque[dict], row: dict) -> None:
        with self._lock:
            if len(self._requests) + len(self._shadows) >= self.max_pending:
                full = True
            else:
                full = False
                queue.append(row)
                wake = len(queue) >= self.max_batch
        if full:
            self._drop(1, f"{self.max_pending} entries wait unwritten (is the database down?)")
        elif wake:
            self._wake.set()

    def _drop(self, count: int, why: str) -> None:
        with self._lock:
            self.dropped += count
            total = self.dropped
        # A warning per power of two: visible, without flooding the log in an outage.
        if total & (total - 1) == 0:
            log.warning("request log: %d entries dropped so far; %s", total, why)

    def _take(self) -> tuple[list[dict], list[dict]]:
        with self._lock:
            requests = [
                self._requests.popleft() for _ in range(min(self.max_batch, len(self._requests)))
            ]
            shadows = [
                self._shadows.popleft() for _ in range(min(self.max_batch, len(self._shadows)))
            ]
        return requests, shadows

    def _put_back(self, requests: list[dict], shadows: list[dict]) -> None:
        with self._lock:
            self._requests.extendleft(reversed(requests))
            self._shadows.extendleft(reversed(shadows))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the writer thread must live on
                log.error("request log: flush failed: %s", _describe(exc))

    def _write(self, requests: list[dict], shadows: list[dict]) -> bool:
        """Write one batch in one transaction; False when the database could not be
        reached (the caller keeps the batch)."""
        try:
            with self._writer.begin() as conn:
                self.written += self._insert(conn, requests, shadows)
            return True
        except _RETRYABLE as exc:
            self.failed_flushes += 1
            log.warning("request log: database unavailable, batch kept: %s", _describe(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a bad row must not lose the batch
            log.warning("request log: a batch was refused, writing row by row: %s", _describe(exc))
        # Some row breaks a constraint: write one at a time and drop those refused.
        for row in requests:
            self._write_one(row, [])
        for row in shadows:
            self._write_one(None, [row])
        return True

    def _write_one(self, request: dict | None, shadows: list[dict]) -> None:
        try:
            with self._writer.begin() as conn:
                self.written += self._insert(conn, [request] if request else [], shadows)
        except Exception as exc:  # noqa: BLE001 - drop this row only
            self._drop(1, f"the database refused an entry: {_describe(exc)}")

    def _insert(self, conn: sa.Connection, requests: list[dict], shadows: list[dict]) -> int:
        new_requests = _insert_new(conn, GatewayRequest.__table__, requests)
        new_shadows = _insert_new(conn, ShadowAnswer.__table__, shadows)
        _bump_deployments(conn, [r for r in requests if r["request_id"] in new_requests])
        return len(new_requests) + len(new_shadows)


def _insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> set[str]:
    """Insert ``rows``, skipping request_ids already stored; the request_ids inserted."""
    return insert_ignoring(conn, table, _same_keys(rows, table), key="request_id")


def _same_keys(rows: list[dict], table: sa.Table) -> list[dict]:
    """Every row with the same keys (a multi-row insert needs them), absent ones None."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row)
    return [{k: row.get(k) for k in keys} for row in rows]


def _bump_deployments(conn: sa.Connection, rows: Iterable[dict]) -> None:
    counts: Counter[int] = Counter()
    latest: dict[int, datetime] = {}
    for row in rows:
        dep = row.get("deployment_id")
        if dep is None:
            continue
        counts[dep] += 1
        at = row["created_at"]
        if dep not in latest or at > latest[dep]:
            latest[dep] = at
    table = Deployment.__table__
    for dep, count in counts.items():
        at = sa.literal(latest[dep], sa.DateTime(timezone=True))
        conn.execute(
            sa.update(table)
            .where(table.c.id == dep)
            .values(
                requests_served=table.c.requests_served + count,
                # Only forward: batches may commit out of order.
                last_request_at=sa.case(
                    (
                        sa.or_(table.c.last_request_at.is_(None), table.c.last_request_at < at),
                        at,
                    ),
                    else_=table.c.last_request_at,
                ),
            )
        )


def _describe(exc: BaseException) -> str:
    """The driver's message without the statement or its parameters (which hold users'
    prompts), with any URL password masked."""
    from app.settings import mask_passwords

    orig = getattr(exc, "orig", None) or exc
    return mask_passwords(f"{type(orig).__name__}: {orig}")[:300]
