"""ftm's OpenAI-compatible server for a local base model and its PEFT adapters, loaded
once on one base (``PeftModel.from_pretrained(..., adapter_name=...)``, then
``load_adapter`` for each other one) and picked per request by the ``model`` the client
sends (``set_adapter`` under a lock; the base answers with the adapters disabled).

    python -m providers.local.serving.app SERVER_DIR

Routes: POST /v1/chat/completions (``stream`` and not, usage counted,
``stream_options.include_usage``), GET /v1/models, GET /health (503 until the model is
loaded), and vLLM's POST /v1/load_lora_adapter and /v1/unload_lora_adapter, so the
provider adds and removes adapters the same way whichever backend runs. Loading, the
chat template and generation settings are `providers.local.inference`'s: a served answer
is the answer ``ftm eval`` gets.

The port is bound before the model loads (and written to the server directory), so the
provider can watch /health meanwhile; a model that fails to load ends the process with
the traceback in its log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from providers.chat_stream import MEDIA_TYPE, ChunkMaker, event_stream, sse, wants_usage
from providers.local.serving.server_dir import ServerDir

log = logging.getLogger("ftm.serve")
DEFAULT_MAX_TOKENS = 256
STREAM_STALL_S = 600.0  # a generation that yields no token for this long is abandoned


class RequestError(Exception):
    """A request the server refuses: answered in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


class ModelHost:
    """The loaded base model, its adapters and tokenizer; one generation at a time."""

    def __init__(self, base: str, base_name: str) -> None:
        self.base = base
        self.base_name = base_name
        self.net: Any = None  # the transformers model, a PeftModel once it has an adapter
        self.tokenizer: Any = None
        self.adapters: dict[str, str] = {}  # served name -> adapter directory
        self._loaded: dict[str, str] = {}  # served name -> peft's adapter name
        self._serial = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()

    # -- loading --------------------------------------------------------------------------

    def load(self, adapters: dict[str, str]) -> None:
        """The base (loaded as the first adapter's training loaded it) and ``adapters``."""
        from providers.local import inference

        first = next(iter(adapters.values()), None)
        if first is not None:
            self.net, _ = inference.load_adapter_base(Path(first))
            self.tokenizer = inference.tokenizer_for(
                inference.tokenizer_source(Path(first), self.base)
            )
        else:
            self.net = inference.load_plain(self.base)
            self.tokenizer = inference.tokenizer_for(self.base)
        for name, path in adapters.items():
            self._add(name, path)
        self.net.eval()
        self.ready.set()

    def _add(self, name: str, path: str) -> None:
        from peft import PeftModel

        # peft's own adapter names are internal and never reused: an adapter unloaded
        # last stays in memory (peft keeps one), and may come back from another path.
        self._serial += 1
        internal = f"a{self._serial}"
        if isinstance(self.net, PeftModel):
            self.net.load_adapter(path, adapter_name=internal)
        else:
            self.net = PeftModel.from_pretrained(self.net, path, adapter_name=internal)
        self._loaded[name] = internal
        self.adapters[name] = path
        log.info("adapter %s loaded from %s", name, path)

    def add_adapter(self, name: str, path: str) -> None:
        with self.lock:
            if self.adapters.get(name) == path:
                return
            self._forget(name)
            self._add(name, path)
            self.net.eval()

    def _forget(self, name: str) -> None:
        internal = self._loaded.pop(name, None)
        self.adapters.pop(name, None)
        if internal is not None and self._loaded:  # peft refuses to delete its last one
            self.net.delete_adapter(internal)

    def remove_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self.adapters:
                raise RequestError(404, f"The adapter {name} is not loaded.", "lora_name")
            self._forget(name)
            log.info("adapter %s unloaded", name)

    # -- answering ------------------------------------------------------------------------

    def served_names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def adapter_for(self, model: str) -> str | None:
        """The adapter a request for ``model`` runs (None: the base)."""
        if model in self.adapters:
            return model
        if model in (self.base_name, self.base):
            return None
        raise RequestError(
            404,
            f"The model {model} is not served here; this server serves: "
            + ", ".join(self.served_names()),
            "model",
            "model_not_found",
        )

    def answer(self, adapter: str | None, body: dict[str, Any], streamer: Any = None) -> Reply:
        """Generate for a validated request with ``adapter`` (None: the base), feeding
        ``streamer`` as tokens come when one is given. Everything that touches the model
        or the tokenizer (a fast tokenizer must not be called from two threads at once)
        runs under the lock."""
        import contextlib

        import torch

        from providers.local import inference

        with self.lock, torch.inference_mode():
            prompt = inference.prompt_text(self.tokenizer, body["messages"])
            ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            ids = {k: v.to(self.net.device) for k, v in ids.items()}
            settings = inference.generation_kwargs(
                self.tokenizer, body["max_tokens"], body["temperature"]
            )
            if body["ignore_eos"]:
                settings["min_new_tokens"] = body["max_tokens"]
            if streamer is not None:
                settings["streamer"] = streamer
            scope: Any = contextlib.nullcontext()
            if adapter is not None:
                self.net.set_adapter(self._loaded[adapter])
            elif hasattr(self.net, "disable_adapter"):  # a PeftModel: the base alone answers
                scope = self.net.disable_adapter()
            with scope:
                out = self.net.generate(**ids, **settings)
            prompt_tokens = int(ids["input_ids"].shape[1])
            text, n_new, ended = inference.reply_of(self.tokenizer, out[0][prompt_tokens:])
        return Reply(text, prompt_tokens, n_new, "stop" if ended else "length")


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return content if isinstance(content, str) else ""


def _parse(body: Any) -> dict[str, Any]:
    """The request's fields this server uses, checked; refusals name the field."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "Missing required parameter: 'model'.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "Missing required parameter: 'messages'.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(
                400, f"messages[{index}] must be an object with a 'role'.", f"messages[{index}]"
            )
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RequestError(400, "max_tokens must be a positive integer.", "max_tokens")
    temperature = body.get("temperature") or 0.0
    if not isinstance(temperature, int | float) or temperature < 0:
        raise RequestError(400, "temperature must be a number >= 0.", "temperature")
    if body.get("n") not in (None, 1):
        raise RequestError(400, "This server generates one choice per request (n=1).", "n")
    messages = [{"role": m["role"], "content": _text_of(m.get("content"))} for m in messages]
    return {
        "model": model,
        "messages": messages,
        "max_tokens": limit,
        "temperature": float(temperature),
        "stream": bool(body.get("stream")),
        # vLLM's extra sampling parameter: generate max_tokens whatever the model's end
        "ignore_eos": body.get("ignore_eos") is True,
        "include_usage": wants_usage(body),
    }


def strip_ends(pieces: Iterator[str]) -> Iterator[str]:
    """Streamed text with the whitespace at its two ends held back, as the whole answer
    is stripped (`inference.reply_of`): the pieces join to the same text."""
    started, pending = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            if not piece:
                continue
            started = True
        body = piece.rstrip()
        if body:
            yield pending + body
            pending = piece[len(body) :]
        else:
            pending += piece


class Server:
    """The HTTP face of a `ModelHost`."""

    def __init__(self, host: ModelHost, backend: str = "transformers") -> None:
        self.host = host
        self.backend = backend

    def app(self) -> Starlette:
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/load_lora_adapter", self.load_adapter, methods=["POST"]),
            Route("/v1/unload_lora_adapter", self.unload_adapter, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    def _require_ready(self) -> None:
        if not self.host.ready.is_set():
            raise RequestError(503, "The model is still loading; retry shortly.")

    async def health(self, request: Request) -> Response:
        if not self.host.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503)
        body = {
            "status": "ok",
            "backend": self.backend,
            "base": self.host.base,
            "adapters": sorted(self.host.adapters),
        }
        return JSONResponse(body)

    async def models(self, request: Request) -> Response:
        try:
            self._require_ready()
        except RequestError as error:
            return error.response()
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "ftm"}
            for name in self.host.served_names()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def load_adapter(self, request: Request) -> Response:
        try:
            self._require_ready()
            body = await _json(request)
            name, path = body.get("lora_name"), body.get("lora_path")
            if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
                raise RequestError(400, "Send lora_name and lora_path.", "lora_name")
            if not (Path(path) / "adapter_config.json").is_file():
                raise RequestError(400, f"{path} is not a PEFT adapter directory.", "lora_path")
            await run_in_threadpool(self.host.add_adapter, name, path)
        except RequestError as error:
            return error.response()
        return JSONResponse({"status": "loaded", "lora_name": name})

    async def unload_adapter(self, request: Request) -> Response:
        try:
            self._require_ready()
            name = (await _json(request)).get("lora_name")
            await run_in_threadpool(self.host.remove_adapter, str(name))
        except RequestError as error:
            return error.response()
        return JSONResponse({"status": "unloaded", "lora_name": name})

    async def chat(self, request: Request) -> Response:
        try:
            self._require_ready()
            body = _parse(await _json(request))
            adapter = self.host.adapter_for(body["model"])
            if body["stream"]:
                return StreamingResponse(self._stream(body, adapter), media_type=MEDIA_TYPE)
            return JSONResponse(await run_in_threadpool(self._complete, body, adapter))
        except RequestError as error:
            return error.response()

    def _complete(self, body: dict[str, Any], adapter: str | None) -> dict[str, Any]:
        reply = self.host.answer(adapter, body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": reply.usage,
        }

    async def _stream(self, body: dict[str, Any], adapter: str | None) -> AsyncIterator[bytes]:
        """Chunks as the tokens come: generation runs in a thread feeding transformers'
        TextIteratorStreamer, so the first words leave before the last are generated."""
        from transformers import TextIteratorStreamer

        maker = ChunkMaker(
            f"chatcmpl-{uuid.uuid4().hex[:24]}",
            int(time.time()),
            body["model"],
            usage_field=body["include_usage"],
        )
        streamer = TextIteratorStreamer(
            self.host.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_STALL_S
        )
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["reply"] = self.host.answer(adapter, body, streamer)
            except BaseException as exc:  # reported in the stream; the thread must not hang it
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=run, name="generate", daemon=True)
        worker.start()
        yield sse(maker.role())
        async for piece in iterate_in_threadpool(strip_ends(iter(streamer))):
            yield sse(maker.content(piece))
        await asyncio.to_thread(worker.join)
        if "error" in result:
            log.error("generation failed: %r", result["error"])
            yield sse({"error": {"message": f"generation failed: {result['error']}"}})
            return
        reply: Reply = result["reply"]
        tail = [maker.finish(reply.finish_reason)]
        if body["include_usage"]:
            tail.append(maker.usage(reply.usage))
        for payload in event_stream(tail):
            yield payload


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise RequestError(400, "The request body is not valid JSON.") from None


def _load_in_background(host: ModelHost, adapters: dict[str, str], server: Any) -> None:
    def load() -> None:
        try:
            started = time.perf_counter()
            host.load(adapters)
            log.info(
                "ready in %.1f s: %s", time.perf_counter() - started, ", ".join(host.served_names())
            )
        except BaseException:
            log.exception("the model failed to load; the server stops")
            server.exit_code = 1
            server.should_exit = True

    threading.Thread(target=load, name="load", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    directory = ServerDir(Path((argv or sys.argv[1:])[0]))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = directory.read_config()
    if config.get("torch_threads"):
        import torch

        torch.set_num_threads(int(config["torch_threads"]))
    adapters = {name: path for name, path in directory.read_adapters().items() if path}
    host = ModelHost(config["base"], config["base_name"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(config.get("port") or 0)))
    directory.write_port(sock.getsockname()[1])
    log.info("listening on 127.0.0.1:%d; loading %s", sock.getsockname()[1], config["base"])
    server = uvicorn.Server(
        uvicorn.Config(Server(host).app(), log_level="warning", timeout_graceful_shutdown=5)
    )
    server.exit_code = 0  # type: ignore[attr-defined]
    _load_in_background(host, adapters, server)
    server.run(sockets=[sock])
    return int(getattr(server, "exit_code", 0))


if __name__ == "__main__":
    raise SystemExit(main())
