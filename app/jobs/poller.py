"""The job poller: refreshes every active job, concurrently, politely, and only for news.

- asyncio drives; the provider SDKs are synchronous, so each refresh runs in a worker
  thread of the poller's own pool, sized to the concurrency (asyncio's default pool is
  only min(32, cpus + 4) threads);
- the short write transaction that records a refresh runs on the poller's one writer
  thread: SQLite takes one writer at a time anyway, and sixteen threads queueing on its
  lock sleep in its busy handler (up to 100 ms a try) while their ORM work fights the UI
  thread for the GIL; one writer keeps the event loop (the TUI's) responsive;
- at most ``concurrency`` refreshes at once, and at most ``requests_per_second`` refreshes
  started per provider; a 429's Retry-After pauses that whole provider;
- a job whose refresh failed is retried after an exponential backoff with jitter, never
  sooner than the provider's Retry-After;
- each refresh asks only for events newer than the job's cursor;
- stall detection, and the actual cost when a job ends, happen in `app.jobs.tracking`.

Two pollers (the TUI and `ftm watch`) may run at once: every write is idempotent, so
nothing is recorded twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from app.jobs.tracking import apply_refresh, apply_remote
from app.settings import PollerSettings
from db import repository
from db.engine import read_session, write_session
from db.models import Job
from providers.backoff import backoff_delay
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import TERMINAL_STATUSES, JobStatus, Refresh

MAX_BACKOFF_S = 300.0
MAX_RESENDS = 2
"""How many times the poller sends again a create that never took effect."""


@dataclass
class CycleReport:
    """What one poll cycle did."""

    jobs: int = 0
    """Active jobs seen."""
    refreshed: int = 0
    errors: int = 0
    deferred: int = 0
    """Skipped this cycle: backing off after an error."""
    events_fetched: int = 0
    """Events the providers returned (only those newer than each job's cursor)."""
    events_recorded: int = 0
    finished: int = 0
    reconciled: int = 0
    awaiting_confirmation: int = 0
    """Launches whose create went unconfirmed and that the provider does not show yet."""
    actuals_recorded: int = 0
    """Ended jobs whose actual cost was recorded this cycle (e.g. local jobs whose worker
    wrote the end itself, unseen by the poller)."""
    duration_s: float = 0.0
    messages: list[str] = field(default_factory=list)
    health: list[str] = field(default_factory=list)
    """Training-health findings recorded this cycle ("job N: message"), each once."""


@dataclass(frozen=True)
class _Target:
    id: int
    provider: str
    remote_id: str | None
    uid: str
    events_cursor: str | None


class _NotFoundYet(Exception):
    """An unconfirmed create is not visible at the provider yet, inside its grace window."""

    def __init__(self, grace_left_s: float) -> None:
        super().__init__(f"not found yet; {grace_left_s:.0f} s of grace left")
        self.grace_left_s = grace_left_s


def _unconfirmed_since(job: Job) -> datetime:
    """When the launch's create went unconfirmed (rows from before "since": creation)."""
    since = (job.error or {}).get("since")
    moment = datetime.fromisoformat(since) if since else job.created_at
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class RateLimiter:
    """At most ``rate`` starts per second, evenly spaced; `hold` pauses everyone."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if wait:
            await asyncio.sleep(wait)


class Poller:
    """Refresh active jobs. `run_once` does one cycle; `run` loops until stopped."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        settings: PollerSettings | None = None,
        provider_factory: Callable[[str], Provider] | None = None,
        now: Callable[[], datetime] | None = None,
        backoff_base_s: float = 1.0,
        writer_share: float = 1.0,
    ) -> None:
        """
        Args:
            provider_factory: builds a provider by name (default: from the settings).
            now: the clock for progress and stall times (tests move it).
            backoff_base_s: first retry delay after a failed refresh (doubles, jittered).
            writer_share: the most of the time the writer thread spends writing (0..1]:
                below 1 it rests after each write, in proportion, so that a UI thread in
                the same process gets the GIL (the TUI's poller; `ftm watch` writes flat out).
        """
        if engine is None:
            from app.database import get_engine

            engine = get_engine()
        if settings is None:
            from app.settings import get_settings

            settings = get_settings().poller
        self.engine = engine
        self.settings = settings
        self._factory = provider_factory or self._default_factory
        self._now = now or (lambda: datetime.now(UTC))
        self.backoff_base_s = backoff_base_s
        if not 0 < writer_share <= 1:
            raise ValueError(f"writer_share must be in (0, 1], not {writer_share}")
        self.writer_share = writer_share
        self._providers: dict[str, Provider | ProviderError] = {}
        self._providers_lock = threading.Lock()
        self._limiters: dict[str, RateLimiter] = {}
        self._failures: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.concurrency), thread_name_prefix="ftm-poller"
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ftm-poller-db")

    def _default_factory(self, name: str) -> Provider:
        from app.jobs.providers import make_provider

        return make_provider(name, engine=self.engine)

    def provider(self, name: str) -> Provider:
        """The poller's instance of provider ``name`` (one per poller, reused)."""
        with self._providers_lock:  # worker threads ask at once; build each provider once
            cached = self._providers.get(name)
            if cached is None:
                try:
                    cached = self._factory(name)
                except ProviderError as exc:
                    cached = exc
                self._providers[name] = cached
        if isinstance(cached, ProviderError):
            raise cached
        return cached

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=False, cancel_futures=True)
        for p in self._providers.values():
            if isinstance(p, Provider):
                p.close()
        self._providers.clear()

    # -- one cycle -----------------------------------------------------------------------

    def active_targets(self) -> list[_Target]:
        active = [s.value for s in JobStatus if s not in TERMINAL_STATUSES]
        with read_session(self.engine) as session:
            rows = session.exec(
                select(Job.id, Job.provider, Job.remote_id, Job.uid, Job.events_cursor, Job.error)
                .where(Job.status.in_(active))
                .order_by(Job.id)
            ).all()
        targets = []
        for id_, provider, remote_id, uid, cursor, error in rows:
            unconfirmed = remote_id is None and (error or {}).get("code") == "create_unconfirmed"
            if remote_id is not None or unconfirmed:
                targets.append(_Target(id_, provider, remote_id, uid, cursor))
        return targets

    async def run_once(self) -> CycleReport:
        """Refresh every active job once (those backing off wait for a later cycle)."""
        started = time.perf_counter()
        report = CycleReport()
        loop = asyncio.get_running_loop()
        # the database read runs in a thread too: inside the TUI this loop is the UI's
        targets = await loop.run_in_executor(self._writer, self.active_targets)
        report.jobs = len(targets)
        semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        now = time.monotonic()
        due = []
        for t in targets:
            if self._retry_at.get(t.id, 0.0) > now:
                report.deferred += 1
            else:
                due.append(t)
        await asyncio.gather(*(self._poll_one(t, semaphore, report) for t in due))
        report.actuals_recorded = await loop.run_in_executor(
            self._writer, self.record_pending_actuals
        )
        report.duration_s = time.perf_counter() - started
        return report

    def record_pending_actuals(self) -> int:
        """Record the actual cost of jobs that ended unseen by the poller (a local worker
        writes its final status itself). A cheap read first: the write lock is taken only
        when some job needs it; a costs failure never breaks the cycle."""
        try:
            from app.costs.actuals import pending_actuals_statement, record_pending_actuals
        except ModuleNotFoundError as exc:
            if exc.name in ("app.costs", "app.costs.actuals"):
                return 0
            raise
        try:
            with read_session(self.engine) as session:
                if session.exec(pending_actuals_statement().limit(1)).first() is None:
                    return 0
            with write_session(self.engine) as session:
                return record_pending_actuals(session)
        except Exception as exc:  # costs must not stop tracking; retried next cycle
            import logging

            logging.getLogger(__name__).warning("could not record actual costs: %s", exc)
            return 0

    def _limiter(self, name: str) -> RateLimiter:
        if name not in self._limiters:
            self._limiters[name] = RateLimiter(self.settings.requests_per_second)
        return self._limiters[name]

    async def _poll_one(
        self, t: _Target, semaphore: asyncio.Semaphore, report: CycleReport
    ) -> None:
        loop = asyncio.get_running_loop()
        async with semaphore:
            await self._limiter(t.provider).acquire()
            try:
                if t.remote_id is None:  # rare: provider calls and writes interleave
                    fetched, applied = (
                        0,
                        await loop.run_in_executor(
                            self._pool,
                            lambda: self._settle_unconfirmed(self.provider(t.provider), t),
                        ),
                    )
                else:
                    refresh = await loop.run_in_executor(self._pool, self._fetch, t)
                    fetched = len(refresh.events)
                    applied = await loop.run_in_executor(self._writer, self._record, t, refresh)
            except _NotFoundYet as wait:  # look again soon; not an error, and never later
                # than the end of the grace window, when it is settled either way
                failures = self._failures.get(t.id, 0) + 1
                self._failures[t.id] = failures
                delay = backoff_delay(failures - 1, None, base=self.backoff_base_s, cap=30.0)
                self._retry_at[t.id] = time.monotonic() + min(delay, wait.grace_left_s)
                report.awaiting_confirmation += 1
                return
            except Exception as exc:  # one job's trouble must never stop the poller
                if not isinstance(exc, ProviderError):
                    # a provider bug or a busy database: back off as for a refusal
                    exc = ProviderError(f"{type(exc).__name__}: {exc}", retryable=False)
                report.errors += 1
                self._back_off(t, exc)
                if len(report.messages) < 20:
                    report.messages.append(f"job {t.id}: {exc.message}")
                return
        self._failures.pop(t.id, None)
        self._retry_at.pop(t.id, None)
        report.refreshed += 1
        report.events_fetched += fetched
        if applied is not None:
            report.events_recorded += applied.new_events
            report.finished += int(applied.finished)
            report.health.extend(f"job {t.id}: {m}" for m in getattr(applied, "health", []))
        if t.remote_id is None:
            report.reconciled += 1

    def _back_off(self, t: _Target, exc: ProviderError) -> None:
        failures = self._failures.get(t.id, 0) + 1
        self._failures[t.id] = failures
        delay = min(
            MAX_BACKOFF_S,
            backoff_delay(
                failures - 1, exc.retry_after_s, base=self.backoff_base_s, cap=MAX_BACKOFF_S
            ),
        )
        if not exc.retryable:
            delay = max(delay, 60.0)  # a refusal will not go away in seconds
        self._retry_at[t.id] = time.monotonic() + delay
        if exc.retry_after_s:
            self._limiter(t.provider).hold(exc.retry_after_s)

    def _fetch(self, t: _Target) -> Refresh:
        """In a pool thread: ask the provider for the job and its news."""
        return self.provider(t.provider).refresh(t.remote_id, t.events_cursor)

    def _record(self, t: _Target, refresh: Refresh) -> Any:
        """On the writer thread: record a refresh in one short transaction (then rest, see
        ``writer_share``; the write lock is already released)."""
        started = time.perf_counter()
        with write_session(self.engine) as session:
            job = repository.get_job(session, t.id)
            applied = apply_refresh(
                session, job, refresh, now=self._now(), stall_after_s=self.settings.stall_after_s
            )
        self._rest_after(time.perf_counter() - started)
        return applied

    def _rest_after(self, busy_s: float) -> None:
        if self.writer_share < 1:
            time.sleep(busy_s * (1 - self.writer_share) / self.writer_share)

    def _settle_unconfirmed(self, provider: Provider, t: _Target) -> Any:
        """A create whose outcome stayed unknown: find it by uid. Once nothing has been
        found for the whole grace window (a slow request may still make it), the first
        create can no longer land: send it again (at most `MAX_RESENDS` times) when the
        launch allows it, else fail the job ``not_created``."""
        found = provider.find_by_uid(t.uid)
        with write_session(self.engine) as session:
            job = repository.get_job(session, t.id)
            if job.remote_id is not None or JobStatus(job.status).is_terminal:
                return None  # settled by someone else meanwhile
            if found is not None:
                job.error = None
                # a terminal job is ended by the next cycle's full refresh (events too)
                applied = apply_remote(session, job, found, now=self._now(), allow_terminal=False)
                repository.add_local_event(
                    session,
                    job,
                    f"Found the job created as {job.remote_id} after a lost response",
                    key="reconciled",
                )
                return applied
            error = dict(job.error or {})
            left = (
                self.settings.unconfirmed_grace_s
                - (self._now() - _unconfirmed_since(job)).total_seconds()
            )
            if left > 0:
                raise _NotFoundYet(left)
            resends = int(error.get("resends", 0))
            if not error.get("resend") or resends >= MAX_RESENDS:
                message = (
                    "the provider has no job for this launch: it was never created "
                    f"({error.get('message', 'create unconfirmed')})"
                )
                job.error = {"code": "not_created", "message": message, "param": None}
                repository.set_status(session, job, JobStatus.FAILED)
                return None
            # Claim the resend in this same write transaction: another poller (the TUI and
            # `ftm watch` at once) now sees a fresh grace window and only looks it up.
            job.error = {**error, "resends": resends + 1, "since": self._now().isoformat()}
            session.add(job)
            repository.add_local_event(
                session,
                job,
                f"No job appeared at the provider within "
                f"{self.settings.unconfirmed_grace_s:.0f} s of the lost create: sending the "
                f"create again (attempt {resends + 2})",
                level="warn",
                key=f"resend:{resends + 1}",
            )
            from app.jobs.launch import spec_from_snapshot

            spec = spec_from_snapshot(job.spec)
        return self._resend_create(provider, t, spec)

    def _resend_create(self, provider: Provider, t: _Target, spec: Any) -> Any:
        """Send the claimed create again (outside any transaction) and record the outcome:
        the job, a new unconfirmed window, or the provider's refusal."""
        try:
            remote = provider.create(spec)
        except ProviderError as exc:
            with write_session(self.engine) as session:
                job = repository.get_job(session, t.id)
                if job.remote_id is not None or JobStatus(job.status).is_terminal:
                    return None
                if exc.code == "create_unconfirmed":  # unknown again: a new grace window
                    job.error = {**(job.error or {}), "message": exc.message}
                    session.add(job)
                    return None
                job.error = {"code": exc.code, "message": exc.message, "param": exc.param}
                repository.set_status(session, job, JobStatus.FAILED)
                repository.add_local_event(
                    session,
                    job,
                    f"Failed while creating the job again: {exc.message}",
                    level="error",
                    key="resend-failed",
                )
            return None
        with write_session(self.engine) as session:
            job = repository.get_job(session, t.id)
            job.error = None
            applied = apply_remote(session, job, remote, now=self._now(), allow_terminal=False)
            repository.add_local_event(
                session,
                job,
                f"Created as {job.remote_id} on the create sent again",
                key="created",
            )
            job.last_progress_at = self._now()
        return applied

    # -- loop ----------------------------------------------------------------------------

    async def run(
        self,
        *,
        interval_s: float | None = None,
        stop: asyncio.Event | None = None,
        on_cycle: Callable[[CycleReport], Any] | None = None,
        cycles: int | None = None,
    ) -> None:
        """Poll every ``interval_s`` until ``stop`` is set (or ``cycles`` are done)."""
        interval = self.settings.interval_s if interval_s is None else interval_s
        stop = stop or asyncio.Event()
        done = 0
        while not stop.is_set():
            report = await self.run_once()
            done += 1
            if on_cycle is not None:
                on_cycle(report)
            if cycles is not None and done >= cycles:
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
