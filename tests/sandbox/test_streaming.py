"""``stream: true`` on chat completions in the OpenAI and Together emulators, read by the
real SDKs over real HTTP: the same text as the answer without streaming, told word by
word, in chunks the vendored specs' stream schemas accept (the spec recorders check
every event), ending with ``[DONE]``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.sandbox.together.server import TogetherSandboxServer
from providers.chat_stream import split_words, sse_payloads
from tests.sandbox.conftest import START
from tests.sandbox.test_together_emulator import TogetherSpecRecorder, make_client

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

QUESTION = [{"role": "user", "content": "Tell me about the hotel."}]
TOGETHER_BASE = "meta-llama/Llama-3.2-1B-Instruct"


def test_split_words_keeps_every_character():
    text = "  two  words\nand a line "
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert pieces == ["  two  ", "words\n", "and ", "a ", "line "]
    assert split_words("") == []


def test_openai_emulator_streams_the_answer_word_by_word(server, client, spec_recorder):
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    text = whole.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    contents = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == len(text.split()) > 5  # one chunk per word
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 2) + [
        "stop"
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage  # include_usage
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].model == whole.model

    # A max_tokens cut streams the same cut text; no usage chunk unless asked for.
    cut = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, max_tokens=4)
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, max_tokens=4, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == (
        cut.choices[0].message.content
    )
    assert streamed[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in streamed)


def test_the_wire_is_server_sent_events_ending_with_done(server):
    with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer sk-x"}) as http:
        response = http.post(
            "chat/completions",
            json={"model": "gpt-4o-mini", "messages": QUESTION, "stream": True},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    events = response.text.split("\n\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    payloads = sse_payloads(response.text)
    assert all(p["object"] == "chat.completion.chunk" for p in payloads[:-1])


@pytest.fixture
def together_client(tmp_path: Path) -> Iterator[tuple[object, TogetherSpecRecorder]]:
    recorder = TogetherSpecRecorder()
    with TogetherSandboxServer(
        seconds_per_step=1.0, start=START, frozen=True, seed=3, data_dir=tmp_path / "tg"
    ) as server:
        sdk = make_client(server, recorder)
        yield sdk, recorder
        sdk.close()
    assert not recorder.failures, "responses that break the spec:\n" + "\n".join(recorder.failures)


def test_together_emulator_streams_the_answer_with_usage_on_the_last_chunk(together_client):
    client, recorder = together_client
    whole = client.chat.completions.create(model=TOGETHER_BASE, messages=QUESTION)
    text = whole.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model=TOGETHER_BASE, messages=QUESTION, stream=True)
    )
    assert all(c.choices[0].delta.role == "assistant" for c in chunks)  # Together's dialect
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert len([c for c in chunks if c.choices[0].delta.content]) == len(text.split()) > 5
    assert chunks[-1].choices[0].finish_reason == "eos"
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert ("/chat/completions", "post", 200) in recorder.seen
