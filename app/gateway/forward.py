"""Sending a chat request on to the holder: over HTTP to its OpenAI-compatible upstream
(`Provider.upstream`), or through `Provider.complete` where it has none.

The client's body goes upstream as it came, with ``model`` replaced by the upstream's name
for the holder. A streamed answer is relayed event by event, byte for byte; the one change
is that the gateway asks the upstream for the usage chunk (to log the tokens) and drops
that chunk when the client did not ask for it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.gateway import errors
from app.gateway.errors import GatewayError
from providers.errors import ProviderError
from providers.types import ChatMessage, Completion, Upstream

DEFAULT_MAX_TOKENS = 256
"""What a request without ``max_tokens`` gets from a provider answering through
`Provider.complete` (its own default)."""


@dataclass
class Outcome:
    """What the request log and the shadow comparison need from one answer."""

    status: int = 200
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    text: str | None = None


def upstream_body(body: dict[str, Any], upstream: Upstream, *, stream: bool) -> dict[str, Any]:
    """The client's body for ``upstream``: its model name; a stream asks for usage."""
    sent = dict(body)
    sent["model"] = upstream.model
    if stream:
        options = dict(sent.get("stream_options") or {})
        options["include_usage"] = True
        sent["stream_options"] = options
    else:
        sent.pop("stream", None)
        sent.pop("stream_options", None)
    return sent


def secrets_of(upstream: Upstream) -> list[str]:
    """The values an upstream error might echo that must not reach the client."""
    values = []
    for value in upstream.headers.values():
        values.append(value)
        values.extend(value.split())  # "Bearer KEY": the key alone as well
    return values


def _url(upstream: Upstream) -> str:
    return upstream.base_url.rstrip("/") + "/chat/completions"


def _failure(exc: httpx.HTTPError, provider: str, model: str) -> GatewayError:
    timeout = isinstance(exc, httpx.TimeoutException)
    return errors.upstream_unreachable(provider, model, type(exc).__name__, timeout=timeout)


async def _refused(response: httpx.Response, provider: str, upstream: Upstream) -> GatewayError:
    content = await response.aread()
    message = errors.redact(errors.upstream_message(content), secrets_of(upstream))
    return errors.upstream_failed(
        provider, upstream.model, response.status_code, message, response.headers.get("retry-after")
    )


async def post(
    client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any], provider: str
) -> tuple[bytes, Outcome]:
    """One non-streamed answer: the upstream's body as it came, and what it says.

    Raises:
        GatewayError: the upstream refused (its status and message, key-free), failed or
            could not be reached.
    """
    sent = upstream_body(body, upstream, stream=False)
    try:
        # No params argument at all when there are none: httpx rebuilds the URL for any
        # given, even empty ones.
        response = await client.post(
            _url(upstream), json=sent, headers=upstream.headers, params=upstream.params or None
        )
    except httpx.HTTPError as exc:
        raise _failure(exc, provider, upstream.model) from None
    if response.status_code >= 400:
        raise await _refused(response, provider, upstream)
    return response.content, outcome_of(response.content)


def outcome_of(content: bytes) -> Outcome:
    """Tokens and text of a chat.completion body (None where it does not say)."""
    try:
        data = json.loads(content)
    except ValueError:
        return Outcome()
    if not isinstance(data, dict):
        return Outcome()
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    text = None
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            text = message["content"]
    return Outcome(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        text=text,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def open_stream(
    client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any], provider: str
) -> httpx.Response:
    """The upstream's streamed answer, its status checked (the caller relays and closes it).

    Raises:
        GatewayError: as `post`, before anything was sent to the client.
    """
    sent = upstream_body(body, upstream, stream=True)
    request = client.build_request(
        "POST",
        _url(upstream),
        json=sent,
        headers=upstream.headers,
        params=upstream.params or None,
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _failure(exc, provider, upstream.model) from None
    if response.status_code >= 400:
        try:
            raise await _refused(response, provider, upstream)
        finally:
            await response.aclose()
    return response


@dataclass
class SseRelay:
    """Passes server-sent events through unchanged, one whole event at a time, noting the
    usage chunk's counts (and dropping that chunk when the client did not ask for usage)
    and, when ``collect_text``, the reply's text (for a shadow comparison)."""

    client_wants_usage: bool
    collect_text: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    _buffer: bytes = b""
    _parts: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> bytes:
        """The complete events ``chunk`` finishes, to send on (empty: none yet)."""
        self._buffer += chunk
        if b"\n\n" not in self._buffer:
            return b""
        *events, self._buffer = self._buffer.split(b"\n\n")
        return b"".join(event + b"\n\n" for event in events if self._keep(event))

    def finish(self) -> bytes:
        """Whatever the upstream sent after its last complete event."""
        tail, self._buffer = self._buffer, b""
        if self.collect_text:
            self.outcome.text = "".join(self._parts)
        return tail

    def _keep(self, event: bytes) -> bool:
        # Most chunks need no parsing: only the usage chunk is dropped, and only text
        # collection reads the others.
        has_usage = b'"usage"' in event and b'"usage":null' not in event
        has_usage = has_usage and b'"usage": null' not in event
        if not has_usage and not self.collect_text:
            return True
        data = b"\n".join(
            line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if not data or data == b"[DONE]":
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        if not isinstance(chunk, dict):
            return True
        choices = chunk.get("choices") or []
        if self.collect_text:
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if choice.get("index", 0) == 0 and isinstance(delta, dict):
                    if isinstance(delta.get("content"), str):
                        self._parts.append(delta["content"])
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.outcome.prompt_tokens = _int(usage.get("prompt_tokens"))
            self.outcome.completion_tokens = _int(usage.get("completion_tokens"))
            if not choices and not self.client_wants_usage:
                return False
        return True


def client_wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


# ------------------------------------------------------------ through Provider.complete


def chat_messages(body: dict[str, Any]) -> list[ChatMessage]:
    """The request's messages as the contract's type (text parts joined).

    Raises:
        GatewayError: 400, the messages are missing or malformed.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.bad_request(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    converted = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise errors.bad_request(
                f"Invalid value for 'messages[{index}]': expected an object with a 'role'.",
                param=f"messages[{index}]",
                code="invalid_value",
            )
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        converted.append(ChatMessage(role=message["role"], content=content or ""))
    return converted


def complete_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    kwargs: dict[str, Any] = {"max_tokens": int(limit)}
    if isinstance(body.get("temperature"), int | float):
        kwargs["temperature"] = float(body["temperature"])
    return kwargs


def provider_failed(provider: str, model: str, exc: ProviderError) -> GatewayError:
    """A provider's own error (already key-free: providers redact) as a 502."""
    return errors.GatewayError(
        502,
        f"provider {provider} failed for {model}: {exc.message}",
        code="provider_error",
        type="server_error",
    )


def completion_json(completion: Completion, model: str) -> dict[str, Any]:
    """A `Completion` as an OpenAI chat.completion object."""
    prompt, reply = completion.prompt_tokens, completion.completion_tokens
    body: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model or model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if prompt is not None and reply is not None:
        body["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": reply,
            "total_tokens": prompt + reply,
        }
    return body


def completion_events(completion: Completion, model: str, *, with_usage: bool) -> bytes:
    """A `Completion` as a stream: the whole text in one chunk, the finish, the usage chunk
    when asked for, and ``[DONE]``."""
    whole = completion_json(completion, model)
    base = {k: whole[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    chunks: list[dict[str, Any]] = [
        base
        | {
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": completion.text},
                    "finish_reason": None,
                }
            ]
        },
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if with_usage and "usage" in whole:
        chunks.append(base | {"choices": [], "usage": whole["usage"]})
    events: Sequence[bytes] = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"
