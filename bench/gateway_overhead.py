"""What `ftm serve` adds: latency against calling the emulator directly, same run, and
500 concurrent streams with none dropped.

(a) Open loop: ``--rate`` requests/s (default 200) to the gateway and as many straight to
    the emulator, interleaved over ``--seconds`` (default 10, after a 1 s warm-up that is
    not counted). Latency is counted from each request's scheduled time (an open loop: a
    stall delays the requests behind it and shows). Prints p50/p99 of each, the added
    milliseconds (targets: p50 < 2 ms, p99 < 10 ms) and the ratios.
(b) ``--streams`` (default 500) streamed requests at once through the gateway to a
    streaming upstream (``--chunks`` chunks ``--gap-ms`` apart), and the same straight to
    that upstream: how many completed with ``[DONE]``, how many were dropped (target 0),
    wall time of each and the ratio.

Each server is its own process (see gateway_common.py); the machine's other load shows in
the figures, so compare the two columns of one run, not runs on different days.

    .venv/bin/python bench/gateway_overhead.py
    .venv/bin/python bench/gateway_overhead.py --rate 100 --seconds 5 --streams 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx
from gateway_common import (
    MODEL,
    PROMPT,
    Http11,
    emulator,
    ftm_home,
    gateway,
    percentile,
    set_up,
    sse_upstream,
)


async def _one(client: Http11, due: float) -> float | None:
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    try:
        body = await asyncio.wait_for(client.post(), 30)
    except TimeoutError:
        return None
    return (time.perf_counter() - due) * 1000 if body is not None else None


async def open_loop(
    direct_url: str, gateway_url: str, key: str, rate: float, seconds: float, warmup: float = 1.0
) -> dict:
    clients = {
        "gateway": Http11(gateway_url, key, "bench"),
        "direct": Http11(direct_url, "sk-bench", MODEL),
    }
    for client in clients.values():  # the first requests load tokenizers, open connections
        for _ in range(20):
            await client.post()
    start = time.perf_counter() + 0.2
    total = int(rate * (seconds + warmup))
    period = 1.0 / rate
    tasks: list[tuple[str, bool, asyncio.Task]] = []
    for i in range(total):
        due = start + i * period
        counted = i * period >= warmup
        # Both at the same rate, interleaved half a period apart.
        tasks.append(("gateway", counted, asyncio.create_task(_one(clients["gateway"], due))))
        tasks.append(
            ("direct", counted, asyncio.create_task(_one(clients["direct"], due + period / 2)))
        )
    results: dict[str, list[float]] = {"gateway": [], "direct": []}
    failed = {"gateway": 0, "direct": 0}
    for name, counted, task in tasks:
        latency = await task
        if not counted:
            continue
        if latency is None:
            failed[name] += 1
        else:
            results[name].append(latency)
    for client in clients.values():
        client.close()
    failures = {name: dict(client.failures) for name, client in clients.items()}
    figures = {}
    for name, values in results.items():
        figures[name] = {
            "requests": len(values) + failed[name],
            "failed": failed[name],
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
        }
    figures["failures"] = failures  # why, for those that failed
    figures["added_p50_ms"] = figures["gateway"]["p50_ms"] - figures["direct"]["p50_ms"]
    figures["added_p99_ms"] = figures["gateway"]["p99_ms"] - figures["direct"]["p99_ms"]
    return figures


async def _stream(client: httpx.AsyncClient, url: str, key: str, model: str) -> bool:
    body = {"model": model, "messages": PROMPT, "stream": True}
    try:
        async with client.stream(
            "POST", url + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as response:
            if response.status_code != 200:
                return False
            done = False
            async for line in response.aiter_lines():
                done = done or line.strip() == "data: [DONE]"
            return done
    except httpx.HTTPError:
        return False


async def concurrent_streams(url: str, key: str, model: str, count: int) -> dict:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(_stream(client, url, key, model) for _ in range(count)))
        wall = time.perf_counter() - started
    completed = sum(outcomes)
    return {"sent": count, "completed": completed, "dropped": count - completed, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args()

    with ftm_home():
        _, key = set_up()
        with emulator() as direct_url, gateway(direct_url) as gateway_url:
            cpu = (gateway_url.cpu_s(), direct_url.cpu_s())
            latency = asyncio.run(open_loop(direct_url, gateway_url, key, args.rate, args.seconds))
            # CPU per request: what the gateway costs, whatever else the machine runs.
            total = args.rate * (args.seconds + 1) + 20
            latency["gateway_cpu_ms_per_request"] = (gateway_url.cpu_s() - cpu[0]) / total * 1000
            latency["emulator_cpu_ms_per_request"] = (
                (direct_url.cpu_s() - cpu[1]) / (2 * total) * 1000
            )
        with sse_upstream(args.chunks, args.gap_ms) as sse_url, gateway(sse_url) as streams_url:
            through = asyncio.run(concurrent_streams(streams_url, key, "bench", args.streams))
            straight = asyncio.run(concurrent_streams(sse_url, "sk-bench", MODEL, args.streams))

    g, d = latency["gateway"], latency["direct"]
    print(f"open loop, {args.rate:g} requests/s each, {args.seconds:g} s (after 1 s warm-up):")
    print(
        f"  direct  p50 {d['p50_ms']:7.2f} ms  p99 {d['p99_ms']:7.2f} ms  failed {d['failed']}/{d['requests']}"
    )
    print(
        f"  gateway p50 {g['p50_ms']:7.2f} ms  p99 {g['p99_ms']:7.2f} ms  failed {g['failed']}/{g['requests']}"
    )
    print(
        f"  added   p50 {latency['added_p50_ms']:7.2f} ms (target < 2)  "
        f"p99 {latency['added_p99_ms']:7.2f} ms (target < 10)"
    )
    print(
        f"  ratio gateway/direct: p50 {g['p50_ms'] / d['p50_ms']:.2f}x  p99 {g['p99_ms'] / d['p99_ms']:.2f}x"
    )
    print(
        f"  CPU per request: gateway {latency['gateway_cpu_ms_per_request']:.2f} ms, emulator "
        f"{latency['emulator_cpu_ms_per_request']:.2f} ms "
        f"(ratio {latency['gateway_cpu_ms_per_request'] / latency['emulator_cpu_ms_per_request']:.2f}x)"
    )
    if any(latency["failures"].values()):
        print(f"  failures by cause: {latency['failures']}")
    print(f"{args.streams} concurrent streams ({args.chunks} chunks, {args.gap_ms:g} ms apart):")
    print(
        f"  through the gateway: {through['completed']} completed, {through['dropped']} dropped "
        f"(target 0), {through['wall_s']:.2f} s"
    )
    print(f"  straight upstream:   {straight['completed']} completed, {straight['wall_s']:.2f} s")
    print(f"  ratio wall time gateway/straight: {through['wall_s'] / straight['wall_s']:.2f}x")
    print(json.dumps({"latency": latency, "streams": {"gateway": through, "direct": straight}}))
    met = (
        latency["added_p50_ms"] < 2
        and latency["added_p99_ms"] < 10
        and through["dropped"] == 0
        and g["failed"] == 0
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
