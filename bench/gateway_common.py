"""What the gateway benchmarks share: a fresh FTM_HOME with a key and a promoted alias,
and the processes they measure, each its own process so the load generator does not share
a GIL with what it measures:

- the OpenAI emulator (``app.sandbox``);
- a streaming upstream (``sse``): an OpenAI-compatible server that answers every chat
  request as a stream of ``--chunks`` chunks, ``--gap-ms`` apart (the emulator does not
  stream), for the concurrent-streams run;
- ``ftm serve`` itself, pointed at either.

Run as a script it is one of those servers (``python bench/gateway_common.py emulator``
or ``sse``), printing its URL on the first line.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVE = "from app.cli.main import main; main()"
MODEL = "gpt-4o-mini-2024-07-18"
PROMPT = [{"role": "user", "content": "Where is my refund?"}]
OTHER = "gpt-4.1-2025-04-14"


class Http11:
    """A lean HTTP/1.1 client for the open loop: requests pre-encoded once, kept-alive
    connections reused, the answer read by its Content-Length. httpx costs ~1 ms of CPU a
    request, which at hundreds a second on a small machine would measure the load
    generator instead of the servers."""

    def __init__(self, url: str, key: str, model: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port
        body = json.dumps({"model": model, "messages": PROMPT, "max_tokens": 16}).encode()
        self.request = (
            f"POST {parsed.path}/chat/completions HTTP/1.1\r\nhost: {self.host}\r\n"
            f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.failures: Counter[str] = Counter()

    async def post(self) -> bytes | None:
        """One request: the body of a 200 answer, else None (why: in `failures`). A kept
        connection the server closed meanwhile (its keep-alive timeout) is retried once
        on a new one, as HTTP clients do: not a failure of the server."""
        for attempt in range(2):
            reused = bool(self.idle) and attempt == 0  # the retry: a new connection
            reader, writer = (
                self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            )
            try:
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, AttributeError, ValueError) as exc:
                writer.close()
                if (
                    reused
                    and attempt == 0
                    and isinstance(exc, OSError | asyncio.IncompleteReadError)
                ):
                    continue
                self.failures[type(exc).__name__] += 1
                return None
            self.idle.append((reader, writer))
            if status != 200:
                self.failures[f"HTTP {status}"] += 1
                return None
            return body
        return None

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def ftm_home() -> Iterator[Path]:
    """A fresh FTM_HOME for this process and its children."""
    with tempfile.TemporaryDirectory(prefix="ftm-gw-bench-") as home:
        os.environ["FTM_HOME"] = home
        for name in list(os.environ):
            if name.startswith("FTM_") and name != "FTM_HOME":
                del os.environ[name]
        yield Path(home)


def set_up(task: str = "bench") -> tuple[object, str]:
    """The database with a gateway key and ``task:production`` held by `MODEL`; returns
    (engine, key)."""
    from app.database import get_engine
    from app.gateway import keys

    engine = get_engine()
    key = keys.create(engine, "bench").key
    promote(engine, task, MODEL)
    return engine, key


def promote(engine, task: str, model: str) -> None:
    """Move ``task:production`` to ``model`` through the promotion API."""
    from app.promotion import aliases
    from db.engine import write_session
    from db.models import EvalRun

    with write_session(engine) as session:
        run = EvalRun(
            task=task, candidate_kind="fine_tuned", provider="openai", model=model, status="done"
        )
        session.add(run)
    aliases.promote(
        engine, task=task, alias="production", run_id=run.id, who="bench", why="bench",
        override=True,
    )  # fmt: skip


class Server(str):
    """A server process's URL, with its pid (for its CPU time)."""

    pid: int

    def cpu_s(self) -> float:
        """CPU seconds the process has used (user + system; Linux's /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server process; yields the URL its first line names, stops it (SIGTERM) after."""
    child = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}),
        cwd=REPO,
    )
    try:
        line = child.stdout.readline()
        url = next((w for w in line.split() if w.startswith("http")), None)
        if url is None:
            raise RuntimeError(f"{args[0]} did not start: {line!r}")
        server = Server(url)
        server.pid = child.pid
        yield server
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def emulator() -> contextmanager:
    return process([__file__, "emulator"])


def sse_upstream(chunks: int, gap_ms: float) -> contextmanager:
    return process([__file__, "sse", str(chunks), str(gap_ms)])


def gateway(upstream_url: str) -> contextmanager:
    """``ftm serve`` on a free port, its OpenAI provider pointed at ``upstream_url``."""
    env = {
        "FTM_PROVIDERS__OPENAI__SANDBOX": "true",
        "FTM_PROVIDERS__OPENAI__SANDBOX_URL": upstream_url,
    }
    return process(["-c", SERVE, "serve", "--port", "0"], env)


# ---------------------------------------------------------------- the servers themselves


def _serve_emulator() -> None:
    import threading

    from app.sandbox.server import SandboxServer

    with SandboxServer(port=0, seed=7) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


def _serve_sse(chunks: int, gap_ms: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from app.sandbox.server import bind_socket

    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body["model"]
        usage = (body.get("stream_options") or {}).get("include_usage")

        async def events():
            for index in range(chunks):
                delta = {"content": f"w{index} "}
                yield (
                    b"data: "
                    + json.dumps(base | {"choices": [{"index": 0, "delta": delta}]}).encode()
                    + b"\n\n"
                )
                await asyncio.sleep(gap_ms / 1000)
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield b"data: " + json.dumps(base | done).encode() + b"\n\n"
            if usage:
                counts = {
                    "prompt_tokens": 10,
                    "completion_tokens": chunks,
                    "total_tokens": 10 + chunks,
                }
                yield (
                    b"data: "
                    + json.dumps(base | {"choices": [], "usage": counts}).encode()
                    + b"\n\n"
                )
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    sock = bind_socket("127.0.0.1", 0)
    sock.listen(4096)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, backlog=4096)).run(
        sockets=[sock]
    )


if __name__ == "__main__":
    if sys.argv[1] == "emulator":
        _serve_emulator()
    else:
        _serve_sse(int(sys.argv[2]), float(sys.argv[3]))
