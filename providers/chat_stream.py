"""Streamed chat completions: ``chat.completion.chunk`` objects and their server-sent-event
framing, shared by everything in ftm that answers ``stream: true`` (the OpenAI and
Together emulators, the local model server) and by clients that read such a stream.

The shape is OpenAI's (CreateChatCompletionStreamResponse): a first chunk whose delta
carries the role, content deltas, a chunk with the finish reason and an empty delta, then,
when the request asked for ``stream_options.include_usage``, a chunk with no choices and
the usage; each event is ``data: <json>\\n\\n`` and the stream ends with
``data: [DONE]\\n\\n``. Together's dialect differs in two ways its spec states: every
delta names the role, and the finishing chunk carries the usage itself.

Pure: no I/O, no framework; providers/ and app/ both import it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
_WORD = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """``text`` cut into words: the pieces join back to ``text`` exactly (each keeps the
    whitespace after it, the first also any before it); none for an empty text."""
    return _WORD.findall(text)


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a request asked for the final usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def sse_payloads(text: str) -> list[dict[str, Any] | str]:
    """The ``data:`` payloads of an event stream, JSON-decoded, with ``"[DONE]"`` kept as
    the string; comments and other fields are skipped."""
    payloads: list[dict[str, Any] | str] = []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


@dataclass(frozen=True)
class ChunkMaker:
    """The chunks of one streamed completion: every chunk shares ``id``, ``created`` and
    ``model``. ``role_in_every_delta`` and ``usage_on_finish`` select Together's dialect;
    ``extra`` is copied into every chunk (e.g. OpenAI's ``system_fingerprint``)."""

    id: str
    created: int
    model: str
    role_in_every_delta: bool = False
    usage_on_finish: bool = False
    usage_field: bool = False  # OpenAI's include_usage: every chunk carries "usage": null
    extra: tuple[tuple[str, Any], ...] = ()

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            **dict(self.extra),
            "choices": choices,
        }
        if usage is not None or self.usage_field:
            chunk["usage"] = usage
        return chunk

    def _choice(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        if self.role_in_every_delta:
            delta = {"role": "assistant", **delta}
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    def role(self, index: int = 0) -> dict[str, Any]:
        """The opening chunk: the role, and no text yet."""
        return self._chunk([self._choice(index, {"role": "assistant", "content": ""}, None)])

    def content(self, text: str, index: int = 0) -> dict[str, Any]:
        return self._chunk([self._choice(index, {"content": text}, None)])

    def finish(
        self, reason: str, index: int = 0, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The chunk that ends choice ``index``; in Together's dialect it carries ``usage``."""
        return self._chunk(
            [self._choice(index, {}, reason)], usage if self.usage_on_finish else None
        )

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's trailing usage chunk: no choices, the whole request's usage."""
        return self._chunk([], usage)


def completion_chunks(
    completion: dict[str, Any], maker: ChunkMaker, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """A finished (non-streaming) chat completion retold as chunks: per choice the role,
    its text word by word and its finish; then the usage chunk if ``include_usage`` (in
    OpenAI's dialect; Together's finishing chunk carries it anyway)."""
    usage = completion.get("usage")
    choices = completion["choices"]
    for position, choice in enumerate(choices):
        index = choice.get("index", position)
        yield maker.role(index)
        for piece in split_words(choice["message"].get("content") or ""):
            yield maker.content(piece, index)
        last = position == len(choices) - 1
        yield maker.finish(choice["finish_reason"], index, usage if last else None)
    if include_usage and not maker.usage_on_finish and usage is not None:
        yield maker.usage(usage)


def event_stream(chunks: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """``chunks`` framed as server-sent events, then the ``[DONE]`` sentinel."""
    for chunk in chunks:
        yield sse(chunk)
    yield DONE
