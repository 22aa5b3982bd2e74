"""A promotion and a rollback during a load run through `ftm serve`: how many requests that
started after the move was committed still reached the previous holder (stragglers;
target 0).

An open loop sends ``--rate`` requests/s (default 100) to ``bench`` (its production alias)
for ``--seconds`` (default 6). A third of the way in, the alias is promoted to another
model through the promotion API (the same database, from this process); two thirds in,
rolled back. Each answer names the model that gave it. A request counts as starting
after a move when it was sent after the promotion call returned (its commit done); one
sent while the move was in flight may get either holder and is only counted as such.

    .venv/bin/python bench/gateway_promotion.py
    .venv/bin/python bench/gateway_promotion.py --rate 50 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from gateway_common import MODEL, OTHER, Http11, emulator, ftm_home, gateway, promote, set_up


async def _one(client: Http11, due: float) -> tuple[float, float, str | None]:
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    sent = time.perf_counter()
    try:
        body = await asyncio.wait_for(client.post(), 30)
    except TimeoutError:
        body = None
    return sent, time.perf_counter(), json.loads(body)["model"] if body is not None else None


def _move(engine, action: str) -> float:
    """Promote or roll back ``bench:production``; returns when its commit was done."""
    if action == "promote":
        promote(engine, "bench", OTHER)
    else:
        from app.promotion import aliases

        aliases.rollback(engine, task="bench", alias="production", who="bench")
    return time.perf_counter()


async def load_run(engine, url: str, key: str, rate: float, seconds: float) -> dict:
    client = Http11(url, key, "bench")
    for _ in range(20):  # connections open, tokenizers loaded
        await client.post()
    start = time.perf_counter() + 0.2
    period = 1.0 / rate
    tasks = [
        asyncio.create_task(_one(client, start + i * period)) for i in range(int(rate * seconds))
    ]
    moves = {}
    for action, at in (("promote", seconds / 3), ("rollback", 2 * seconds / 3)):
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        began = time.perf_counter()
        moves[action] = (began, await asyncio.to_thread(_move, engine, action))
    answers = [await task for task in tasks]
    client.close()

    (promote_began, promoted), (rollback_began, rolled_back) = moves["promote"], moves["rollback"]
    # After the promotion: sent once it was committed, answered before the rollback began.
    after_promotion = [m for t, end, m in answers if t > promoted and end < rollback_began]
    after_rollback = [m for t, _, m in answers if t > rolled_back]
    in_flight = [
        m
        for t, end, m in answers
        if promote_began <= t <= promoted
        or rollback_began <= t <= rolled_back
        or (promoted < t < rollback_began <= end)
    ]
    return {
        "requests": len(answers),
        "failed": sum(m is None for _, _, m in answers),
        "after_promotion": len(after_promotion),
        "stragglers_after_promotion": sum(m not in (OTHER, None) for m in after_promotion),
        "after_rollback": len(after_rollback),
        "stragglers_after_rollback": sum(m not in (MODEL, None) for m in after_rollback),
        "sent_while_moving": len(in_flight),
        "promotion_ms": (promoted - promote_began) * 1000,
        "rollback_ms": (rolled_back - rollback_began) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with ftm_home():
        engine, key = set_up()
        with emulator() as upstream, gateway(upstream) as url:
            figures = asyncio.run(load_run(engine, url, key, args.rate, args.seconds))
    f = figures
    print(f"{f['requests']} requests at {args.rate:g}/s, {f['failed']} failed")
    print(
        f"  after the promotion commit: {f['after_promotion']} requests, "
        f"{f['stragglers_after_promotion']} to the old holder (target 0; ratio "
        f"{f['stragglers_after_promotion'] / max(1, f['after_promotion']):.3f})"
    )
    print(
        f"  after the rollback commit:  {f['after_rollback']} requests, "
        f"{f['stragglers_after_rollback']} to the new holder (target 0; ratio "
        f"{f['stragglers_after_rollback'] / max(1, f['after_rollback']):.3f})"
    )
    print(
        f"  sent while a move was being committed (either holder is right): "
        f"{f['sent_while_moving']}; promotion took {f['promotion_ms']:.0f} ms, rollback "
        f"{f['rollback_ms']:.0f} ms"
    )
    print(json.dumps(figures))
    stragglers = f["stragglers_after_promotion"] + f["stragglers_after_rollback"]
    return 0 if stragglers == 0 and f["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
