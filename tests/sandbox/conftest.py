"""Fixtures: a sandbox server on a random loopback port, and the real openai SDK pointed
at it through an httpx client that checks every response against the official spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from app.sandbox.server import SandboxServer
from providers.chat_stream import MEDIA_TYPE, sse_payloads
from tests.openapi_spec import spec_path, validate_component, validate_response

START = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
STEP_S = 1.0  # with a frozen clock the step length is just a unit of `advance`


class SpecRecorder:
    """An httpx response hook: validates each JSON response against the spec (each chunk
    of a streamed chat completion against its stream schema) and remembers which
    (route, method, status) kinds were seen."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()
        self.failures: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        method = request.method.lower()
        try:
            template = spec_path(request.url.path)
        except AssertionError:
            template = None  # a path the API does not have: it must answer a proper error
        self.seen.add((template or request.url.path, method, response.status_code))
        if template and template.endswith("/content") and response.is_success:
            return  # raw file bytes; the spec calls the body a string
        try:
            if response.headers.get("content-type", "").startswith(MEDIA_TYPE):
                validate_event_stream(response.text)
            elif template is None:
                assert response.status_code == 404, "an unknown path must answer 404"
                validate_component("ErrorResponse", response.json())
            else:
                validate_response(template, method, response.status_code, response.json())
        except (jsonschema.ValidationError, AssertionError, ValueError) as exc:
            self.failures.append(
                f"{request.method} {request.url.path} -> {response.status_code}: {exc}"
            )


def validate_event_stream(text: str) -> None:
    """A streamed chat completion: chunks that fit the spec's stream schema, then
    ``[DONE]`` and nothing after it."""
    payloads = sse_payloads(text)
    assert payloads and payloads[-1] == "[DONE]", "the stream does not end with [DONE]"
    for chunk in payloads[:-1]:
        assert chunk != "[DONE]", "[DONE] before the end of the stream"
        validate_component("CreateChatCompletionStreamResponse", chunk)


@pytest.fixture
def spec_recorder() -> Iterator[SpecRecorder]:
    recorder = SpecRecorder()
    yield recorder
    assert not recorder.failures, "responses that break the spec:\n" + "\n".join(recorder.failures)


def make_client(server: SandboxServer, recorder: SpecRecorder | None, **options) -> openai.OpenAI:
    hooks = {"response": [recorder]} if recorder is not None else {}
    http_client = httpx.Client(event_hooks=hooks, timeout=options.pop("timeout", 10.0))
    options.setdefault("max_retries", 0)
    return openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", http_client=http_client, **options
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxServer]:
    """A frozen-clock sandbox: nothing happens until the test advances the clock."""
    with SandboxServer(
        port=0,
        seconds_per_step=STEP_S,
        start=START,
        frozen=True,
        seed=7,
        data_dir=tmp_path / "sandbox",
    ) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer, spec_recorder: SpecRecorder) -> Iterator[openai.OpenAI]:
    sdk = make_client(server, spec_recorder)
    yield sdk
    sdk.close()


# ------------------------------------------------------------------ training data


def chat_example(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


SENTIMENT = [
    ("The food was wonderful and the staff were kind", "positive"),
    ("Terrible service, cold soup, never again", "negative"),
    ("I loved the quiet garden terrace", "positive"),
    ("The room smelled of smoke and the bed was broken", "negative"),
    ("Great value and a friendly host", "positive"),
    ("Our booking was lost and nobody apologised", "negative"),
    ("Fantastic breakfast with fresh bread", "positive"),
    ("The wifi never worked and the shower was cold", "negative"),
    ("A charming old town hotel, would return", "positive"),
    ("Rude receptionist and a dirty lobby", "negative"),
    ("Spotless rooms and a lovely view of the sea", "positive"),
    ("Noisy street all night, could not sleep", "negative"),
]


def sentiment_rows(system: str = "Classify the review as positive or negative.") -> list[dict]:
    return [chat_example(text, label, system) for text, label in SENTIMENT]


def preference_rows() -> list[dict]:
    return [
        {
            "input": {"messages": [{"role": "user", "content": text}]},
            "preferred_output": [{"role": "assistant", "content": label}],
            "non_preferred_output": [
                {"role": "assistant", "content": "negative" if label == "positive" else "positive"}
            ],
        }
        for text, label in SENTIMENT
    ]


def jsonl(rows: list) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def upload(client: openai.OpenAI, rows: list, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(rows)), purpose="fine-tune").id


def run_to_end(server: SandboxServer, client: openai.OpenAI, job_id: str, budget_s: float = 10_000):
    """Advance the frozen clock in 10-step strides until the job ends; returns the job."""
    spent = 0.0
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in ("succeeded", "failed", "cancelled") and spent < budget_s:
        server.advance(10 * STEP_S)
        spent += 10 * STEP_S
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job
