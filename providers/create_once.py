"""Create a remote job exactly once, for services that take no idempotency key.

Money must never be spent twice, so this is the one implementation every HTTP provider's
``create`` uses; each provider supplies only its own "send one create" and "find the job by
ftm's uid" (both raising `ProviderError`s whose codes follow `providers.sdk_errors`).

The rules:
- answered failures (429, 5xx) and lost connections are followed by a lookup by the uid;
  a create is sent again only once a lookup succeeded and found nothing;
- after a failure that got no answer (`UNANSWERED`: a timeout, a dropped connection, a
  gateway's 502/504) the request may still be in flight and make the job after any
  lookup, so no create is sent again: only lookups, and if the job stays unseen the
  launch ends ``create_unconfirmed`` for the poller to settle by uid;
- a create that never left (`NOT_SENT`) is simply sent again; if no create ever left,
  the launch fails plainly: nothing was created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from providers.backoff import backoff_delay
from providers.errors import ProviderError
from providers.sdk_errors import NOT_SENT, UNANSWERED

Job = TypeVar("Job")

CREATE_UNCONFIRMED = "create_unconfirmed"


def create_exactly_once(
    send: Callable[[], Job],
    find: Callable[[], Job | None],
    *,
    attempts: int,
    timeout_s: float,
    sleep: Callable[[float], None],
) -> Job:
    """The job ``send`` made, sending it at most as the rules above allow.

    Args:
        send: sends one create request; raises a `ProviderError` on failure.
        find: one lookup of the job by ftm's uid (None: not there).
        attempts: rounds of lookup-or-send before giving up.
        timeout_s: the request timeout: after a timeout the service gets this long again
            before the next lookup, so that it sees the job the lost request makes.
        sleep: waits that many seconds (injected so tests need not wait).

    Raises:
        ProviderError: refused (not retryable: nothing was created), ``not_sent`` when no
            create ever reached the service, or ``create_unconfirmed`` when it is still
            unknown after every attempt.
    """
    need_lookup = False  # a create may have reached the service: look before sending again
    maybe_in_flight = False  # a sent create got no answer: never send another
    ever_sent = False  # some create reached the service (answered or not)
    last: ProviderError | None = None
    for attempt in range(max(1, attempts)):
        if attempt:
            wait = backoff_delay(attempt - 1, last.retry_after_s if last else None)
            if last is not None and last.code == "timeout":
                # The server may still be working on the request we gave up on; give it
                # one more timeout period so the lookup below sees the job it makes.
                wait = max(wait, timeout_s)
            sleep(wait)
        if need_lookup:
            try:
                found = find()
            except ProviderError as err:
                if not err.retryable:
                    raise
                last = err
                continue  # still unknown: never create again before a lookup worked
            if found is not None:
                return found
            if maybe_in_flight:
                continue  # not visible yet; it may still appear: only look again
            need_lookup = False
        try:
            return send()
        except ProviderError as err:
            if not err.retryable:
                raise
            last = err
            # Only ever raised, never cleared here (the two copies this replaced differed:
            # OpenAI's assigned, Together's or-ed). A send happens only with need_lookup
            # False, so both behaved alike; the or-ed form stays right if that changes.
            need_lookup = need_lookup or err.code != NOT_SENT
            ever_sent = ever_sent or err.code != NOT_SENT
            maybe_in_flight = maybe_in_flight or err.code in UNANSWERED
    # "Nothing was created" needs both: no create ever reached the service AND the last
    # failure is a never-sent one (OpenAI's stricter test, kept over Together's
    # `not ever_sent` alone, so a lookup failure can never be read as "nothing created").
    if last is not None and last.code == NOT_SENT and not ever_sent:
        raise ProviderError(
            f"{last.message}. No job was created; check the network and launch again.",
            code=NOT_SENT,
            retryable=False,
        )
    try:
        found = find()
    except ProviderError:
        found = None
    if found is not None:
        return found
    raise ProviderError(
        f"could not confirm whether the job was created ({last.message if last else '?'}); "
        "ftm will look it up again by its id before doing anything else",
        code=CREATE_UNCONFIRMED,
        retryable=True,
        retry_after_s=last.retry_after_s if last else None,
    )
