"""The Together emulator over real HTTP, driven by the real ``together`` SDK; every
response is checked against Together's official spec (tests/together_spec.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import together

from app.sandbox.faults import FaultPlan
from app.sandbox.together.server import TogetherSandboxServer
from app.sandbox.training_data import count_message_tokens
from providers.chat_stream import MEDIA_TYPE, sse_payloads
from tests.sandbox.conftest import START, jsonl, preference_rows, sentiment_rows
from tests.together_spec import load_spec, spec_path, validate_component, validate_response

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

STEP_S = 1.0
SMALL = "meta-llama/Llama-3.2-1B-Instruct"  # 1.2B parameters: the "up to 16B" bracket
LORA_SFT_SMALL_NANODOLLARS_PER_TOKEN = 480  # rates.py: $0.48 per million tokens
FULL_SFT_SMALL_NANODOLLARS_PER_TOKEN = 540  # $0.54
DPO_FACTOR = 2.5
# The SDK's own upload steps, which the spec (one-request /files/upload) lacks.
SDK_UPLOAD_STEPS = {("POST", "/v1/files"), ("PUT", "/v1/sandbox-uploads/{file_id}")}


class TogetherSpecRecorder:
    """An httpx response hook: validates each JSON response against Together's spec and
    remembers which (route, method, status) kinds were seen."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()
        self.failures: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        path = request.url.path
        try:
            if path.startswith("/v1/sandbox-uploads/"):
                self.seen.add(("PUT", "/v1/sandbox-uploads/{file_id}", response.status_code))
                assert response.status_code == 200 or response.status_code >= 400
                return
            if request.method == "POST" and path == "/v1/files":
                self.seen.add(("POST", "/v1/files", response.status_code))
                assert response.status_code == 302 or response.status_code >= 400
                return
            if path.endswith("/preprocess"):  # the SDK's last upload step: a FileResponse
                self.seen.add(("/files/{id}/preprocess", "post", response.status_code))
                validate_component("FileResponse", response.json())
                return
            template = spec_path(path)
            self.seen.add((template, request.method.lower(), response.status_code))
            if response.status_code == 204:  # the spec's answer without a body
                assert not response.content, "a 204 with a body"
                described = load_spec()["paths"][template][request.method.lower()]["responses"]
                assert "204" in described and not described["204"].get("content"), template
                return
            if response.headers.get("content-type", "").startswith(MEDIA_TYPE):
                payloads = sse_payloads(response.text)  # a streamed chat completion
                assert payloads and payloads[-1] == "[DONE]", "the stream does not end with [DONE]"
                for payload in payloads:
                    validate_component("ChatCompletionStream", {"data": payload})
                return
            binary = template.endswith("/content") or template == "/finetune/download"
            if binary and response.is_success:
                return  # raw bytes; the spec calls the body a string
            validate_response(template, request.method, response.status_code, response.json())
        except (jsonschema.ValidationError, AssertionError, ValueError) as exc:
            self.failures.append(f"{request.method} {path} -> {response.status_code}: {exc}")


@pytest.fixture
def recorder() -> Iterator[TogetherSpecRecorder]:
    spec = TogetherSpecRecorder()
    yield spec
    assert not spec.failures, "responses that break the spec:\n" + "\n".join(spec.failures)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TogetherSandboxServer]:
    """A frozen clock: nothing happens until the test advances it."""
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, start=START, frozen=True, seed=11, data_dir=tmp_path / "tg"
    ) as running:
        yield running


def make_client(server: TogetherSandboxServer, recorder: TogetherSpecRecorder | None):
    hooks = {"response": [recorder]} if recorder is not None else {}
    return together.Together(
        base_url=server.base_url,
        api_key=server.api_key,
        max_retries=0,
        http_client=httpx.Client(event_hooks=hooks, timeout=10.0),
    )


@pytest.fixture
def client(server, recorder) -> Iterator[together.Together]:
    sdk = make_client(server, recorder)
    yield sdk
    sdk.close()


def write(tmp_path: Path, rows: list, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(jsonl(rows))
    return path


def chat_tokens(rows: list) -> int:
    """Tokens of the examples by the public recipe, counted here independently of the
    emulator's lifecycle (same tokenizer proxy)."""
    return sum(count_message_tokens(row["messages"], "gpt-4o-mini") for row in rows)


def create(client: together.Together, file_id: str, **options):
    options.setdefault("n_epochs", 2)
    options.setdefault("batch_size", 8)
    if options.get("training_method", "sft") == "sft":
        options.setdefault("train_on_inputs", False)
    return client.fine_tuning.create(
        training_file=file_id, model=options.pop("model", SMALL), **options
    )


# -------------------------------------------------------------------- files


def test_sdk_upload_then_list_retrieve_and_content(client, server, recorder, tmp_path):
    path = write(tmp_path, sentiment_rows())
    uploaded = client.files.upload(path)  # the SDK's own check, then its three requests
    assert uploaded.id.startswith("file-") and uploaded.bytes == path.stat().st_size
    assert uploaded.filename == "train.jsonl" and uploaded.purpose == "fine-tune"
    assert [f.id for f in client.files.list().data] == [uploaded.id]
    assert client.files.retrieve(uploaded.id).file_type == "jsonl"
    assert client.files.content(uploaded.id).read() == path.read_bytes()
    assert server.state.files[uploaded.id].path.read_bytes() == path.read_bytes()
    assert ("/files/{id}", "get", 200) in recorder.seen
    assert ("PUT", "/v1/sandbox-uploads/{file_id}", 200) in recorder.seen


def test_spec_one_request_upload(server, recorder, tmp_path):
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"response": [recorder]},
    ) as http:
        answer = http.post(
            "/v1/files/upload",
            data={"purpose": "fine-tune", "file_name": "data.jsonl", "file_type": "jsonl"},
            files={"file": ("data.jsonl", jsonl(sentiment_rows()))},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["filename"] == "data.jsonl"
        refused = http.post(
            "/v1/files/upload",
            data={"purpose": "nonsense", "file_name": "data.jsonl"},
            files={"file": ("data.jsonl", b"{}\n")},
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "purpose"
    assert ("/files/upload", "post", 200) in recorder.seen
    assert ("/files/upload", "post", 400) in recorder.seen


def test_the_presigned_put_needs_its_signature(server, client, tmp_path):
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as http:
        started = http.post(
            "/v1/files", data={"purpose": "fine-tune", "file_name": "a.jsonl"}, files={}
        )
        assert started.status_code == 302, started.text
        file_id = started.headers["x-together-file-id"]
        forged = http.put(f"/v1/sandbox-uploads/{file_id}?signature=0", content=b"{}")
        assert forged.status_code == 403
        assert http.put(started.headers["location"], content=b"{}\n").status_code == 200
    assert file_id in server.state.files


# --------------------------------------------------------------- lifecycle


def test_lifecycle_on_the_clock_with_tokens_and_price(client, server, recorder, tmp_path):
    rows = sentiment_rows()  # 12 examples, batch 8: 2 steps an epoch, 4 steps in all
    file_id = client.files.upload(write(tmp_path, rows)).id
    job = create(client, file_id, suffix="ftm-7f3a")
    assert job.status == "pending" and job.id.startswith("ft-")

    def status() -> str:
        return client.fine_tuning.retrieve(job.id).status

    server.advance(3 * STEP_S)  # validation
    assert status() == "queued"
    server.advance(2 * STEP_S)  # queue
    assert status() == "running"
    server.advance(1 * STEP_S)
    halfway = client.fine_tuning.retrieve(job.id)
    assert halfway.status == "running"
    expected_tokens = 2 * chat_tokens(rows)
    full_price = expected_tokens * LORA_SFT_SMALL_NANODOLLARS_PER_TOKEN
    assert halfway.token_count == expected_tokens
    assert halfway.total_price == full_price // 4  # one step of four: pay as you go
    server.advance(3 * STEP_S)  # the last steps
    assert status() == "compressing"
    server.advance(STEP_S)
    assert status() == "uploading"
    server.advance(STEP_S)
    done = client.fine_tuning.retrieve(job.id)
    assert done.status == "completed"
    assert done.total_price == full_price and done.epochs_completed == 2
    listed = client.fine_tuning.list().data
    assert [j.id for j in listed] == [job.id] and listed[0].suffix == "ftm-7f3a"
    events = client.fine_tuning.list_events(job.id).data
    types = [e.type for e in events]
    assert types[0] == "job_pending" and types[-1] == "job_complete"
    assert types.count("epoch_complete") == 2 and types.count("checkpoint_save") == 1
    assert types.index("training_start") < types.index("training_complete")
    stamps = [e.created_at for e in events]
    assert stamps == sorted(stamps)
    for kind in ("/fine-tunes", "/fine-tunes/{id}", "/fine-tunes/{id}/events"):
        assert any(seen[0] == kind for seen in recorder.seen), kind


def test_estimate_price_is_the_price_a_finished_job_reports(client, server, tmp_path):
    rows = sentiment_rows()
    file_id = client.files.upload(write(tmp_path, rows)).id
    estimate = client.fine_tuning.estimate_price(
        training_file=file_id, model=SMALL, n_epochs=3, training_type={"type": "Full"}
    )
    assert estimate.allowed_to_proceed is True
    assert estimate.estimated_train_token_count == 3 * chat_tokens(rows)
    job = create(client, file_id, n_epochs=3, lora=False)
    server.advance(1000 * STEP_S)
    done = client.fine_tuning.retrieve(job.id)
    assert done.status == "completed"
    assert done.token_count == 3 * chat_tokens(rows)
    assert done.total_price == done.token_count * FULL_SFT_SMALL_NANODOLLARS_PER_TOKEN
    assert done.total_price == round(estimate.estimated_total_price * 1e9)


def test_dpo_is_priced_by_its_own_rate(client, server, tmp_path):
    file_id = client.files.upload(write(tmp_path, preference_rows())).id
    job = create(client, file_id, training_method="dpo", n_epochs=1)
    server.advance(1000 * STEP_S)
    done = client.fine_tuning.retrieve(job.id)
    assert done.status == "completed", [e.message for e in done.events or []]
    assert done.total_price == round(
        done.token_count * LORA_SFT_SMALL_NANODOLLARS_PER_TOKEN * DPO_FACTOR
    )


def test_estimate_refuses_above_the_credit_limit(tmp_path, recorder):
    with TogetherSandboxServer(
        frozen=True, data_dir=tmp_path / "tg", credit_limit_dollars=0.0
    ) as poor:
        sdk = make_client(poor, recorder)
        file_id = sdk.files.upload(write(tmp_path, sentiment_rows())).id
        estimate = sdk.fine_tuning.estimate_price(training_file=file_id, model=SMALL)
        assert estimate.allowed_to_proceed is False and estimate.user_limit == 0.0
        assert estimate.estimated_total_price > 0


def test_cancel_pays_for_the_steps_run(client, server, tmp_path):
    rows = sentiment_rows()
    file_id = client.files.upload(write(tmp_path, rows)).id
    job = create(client, file_id)
    server.advance(5 * STEP_S + 2 * STEP_S)  # validation, queue, two of four steps
    cancelling = client.fine_tuning.cancel(job.id)
    assert cancelling.status == "cancel_requested"
    server.advance(STEP_S)
    cancelled = client.fine_tuning.retrieve(job.id)
    assert cancelled.status == "cancelled"
    assert (
        cancelled.total_price == 2 * chat_tokens(rows) * LORA_SFT_SMALL_NANODOLLARS_PER_TOKEN // 2
    )
    assert [e.type for e in cancelled.events or []][-2:] == ["cancel_requested", "job_stopped"]
    with pytest.raises(together.BadRequestError, match="cancelled and cannot be cancelled"):
        client.fine_tuning.cancel(job.id)


def test_a_file_the_data_check_rejects_ends_the_job_in_error(client, server, tmp_path):
    rows = sentiment_rows()
    rows[3] = {"messages": [{"role": "user", "content": "no reply here"}]}
    file_id = client.files.upload(write(tmp_path, rows), check=False).id
    job = create(client, file_id)
    server.advance(3 * STEP_S)
    failed = client.fine_tuning.retrieve(job.id)
    assert failed.status == "error"
    last = (failed.events or [])[-1]
    assert last.type == "job_error" and last.level == "error"
    assert "Line 4" in last.message and failed.total_price == 0


# ---------------------------------------------------------- limits and refusals


def test_limits_route_and_refusals_name_the_limit(server, recorder, tmp_path, client):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    limits = client.fine_tuning.model_limits(model_name=SMALL)
    assert limits.lora_training.max_rank == 64
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"response": [recorder]},
    ) as http:
        unknown = http.get("/v1/fine-tunes/models/limits", params={"model_name": "nope/x"})
        assert unknown.status_code == 404
        too_big = http.post(
            "/v1/fine-tunes",
            json={
                "training_file": file_id,
                "model": SMALL,
                "training_type": {"type": "Lora", "lora_r": 128, "lora_alpha": 16},
            },
        )
        assert too_big.status_code == 400
        assert "between 1 and 64" in too_big.json()["error"]["message"]
        missing = http.post("/v1/fine-tunes", json={"model": SMALL})
        assert missing.status_code == 400
        assert missing.json()["error"]["param"] == "training_file"
        nokey = httpx.get(f"{server.base_url}/v1/fine-tunes")
        assert nokey.status_code == 401
        validate_component("ErrorData", nokey.json())
    assert not server.state.jobs
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.retrieve("ft-00000000-0000-4000-8000-000000000000")


# ------------------------------------------------------- faults, persistence


def test_the_fault_plan_applies_to_the_together_routes(client, server, tmp_path):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    server.faults = FaultPlan().next(1, "rate_limit", "jobs.create")
    with pytest.raises(together.RateLimitError):
        create(client, file_id)
    assert not server.state.jobs
    assert create(client, file_id).status == "pending"  # the next one goes through
    assert server.faults.total_injected("rate_limit") == 1


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "tg" / "state.json"
    state_file.parent.mkdir()
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, start=START, frozen=True, state_file=state_file
    ) as first:
        sdk = make_client(first, None)
        file_id = sdk.files.upload(write(tmp_path, sentiment_rows())).id
        job_id = create(sdk, file_id).id
        first.advance(6 * STEP_S)
        assert sdk.fine_tuning.retrieve(job_id).status == "running"
        stopped_at = first.clock.now()
    with TogetherSandboxServer(
        seconds_per_step=STEP_S, start=START, frozen=True, state_file=state_file
    ) as second:
        sdk = make_client(second, None)
        assert second.clock.now() >= stopped_at  # time does not run backwards
        assert sdk.fine_tuning.retrieve(job_id).status == "running"
        assert sdk.files.content(file_id).read() == jsonl(sentiment_rows())
        second.advance(1000 * STEP_S)
        assert sdk.fine_tuning.retrieve(job_id).status == "completed"


def test_checkpoints_intermediate_then_final(client, server, recorder, tmp_path):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    job = create(client, file_id, n_epochs=2, n_checkpoints=2)  # 4 steps: saves at 2 and 4
    server.advance(5 * STEP_S + 2 * STEP_S)
    running = client.fine_tuning.list_checkpoints(job.id).data
    assert [(c.step, c.checkpoint_type) for c in running] == [(2, "Intermediate")]
    server.advance(1000 * STEP_S)
    done = client.fine_tuning.list_checkpoints(job.id).data
    assert [(c.step, c.checkpoint_type) for c in done] == [
        (4, "Final Adapter"),
        (4, "Final Merged"),
        (2, "Intermediate"),
    ]
    assert ("/fine-tunes/{id}/checkpoints", "get", 200) in recorder.seen


def test_models_and_chat_base_models_answer_fine_tunes_need_an_endpoint(
    client, server, recorder, tmp_path
):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    job = create(client, file_id)
    server.advance(1000 * STEP_S)
    output_name = client.fine_tuning.retrieve(job.id).model_output_name
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"response": [recorder]},
    ) as http:
        models = http.get("/v1/models").json()
    ids = [m["id"] for m in models]
    assert SMALL in ids and output_name in ids
    few_shot = [
        {"role": "user", "content": "The soup was cold"},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "The soup was lovely and warm"},
    ]
    answer = client.chat.completions.create(model=SMALL, messages=few_shot)
    assert answer.choices[0].message.content == "negative"  # answered from the shots
    assert answer.usage.prompt_tokens == count_message_tokens(few_shot, "gpt-4o-mini")
    with pytest.raises(together.BadRequestError, match="dedicated endpoint"):
        client.chat.completions.create(model=output_name, messages=few_shot)
    with pytest.raises(together.NotFoundError):
        client.chat.completions.create(model="nobody/nothing", messages=few_shot)
    assert ("/chat/completions", "post", 200) in recorder.seen
    assert ("/models", "get", 200) in recorder.seen


def test_with_serve_fine_tunes_a_fine_tune_answers_from_its_training_examples(recorder, tmp_path):
    """As if its dedicated endpoint were up: exact recall, then the nearest example, like
    the OpenAI emulator's fine-tunes; the base model still answers generically, and a
    job still running is not a model yet."""
    with TogetherSandboxServer(
        seconds_per_step=STEP_S,
        start=START,
        frozen=True,
        data_dir=tmp_path / "tg",
        serve_fine_tunes=True,
    ) as served:
        client = make_client(served, recorder)
        rows = [
            {"messages": [{"role": "user", "content": "ticket about my invoice"},
                          {"role": "assistant", "content": "billing"}]},
            {"messages": [{"role": "user", "content": "the app crashes on login"},
                          {"role": "assistant", "content": "technical"}]},
        ] * 10  # fmt: skip
        file_id = client.files.upload(write(tmp_path, rows)).id
        job = create(client, file_id)
        ask = [{"role": "user", "content": "The app CRASHES on login"}]
        running = client.fine_tuning.retrieve(job.id).model_output_name
        with pytest.raises(together.NotFoundError):
            client.chat.completions.create(model=running, messages=ask)
        served.advance(1000 * STEP_S)
        tuned = client.fine_tuning.retrieve(job.id).model_output_name

        def reply(model: str, text: str) -> str:
            asked = [{"role": "user", "content": text}]
            answer = client.chat.completions.create(model=model, messages=asked)
            assert answer.model == model and answer.usage.completion_tokens > 0
            return answer.choices[0].message.content

        assert reply(tuned, "The app CRASHES on login") == "technical"  # exact recall
        assert reply(tuned, "a question about an invoice") == "billing"  # nearest
        assert reply(SMALL, "ticket about my invoice") not in ("billing", "technical")
        assert ("/chat/completions", "post", 200) in recorder.seen


def test_a_body_that_is_not_json_is_refused_in_together_words(server, recorder):
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"response": [recorder]},
    ) as http:
        answer = http.post("/v1/fine-tunes", content=b"{not json")
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "not valid JSON" in message and "OpenAI" not in message


def test_delete_an_ended_job_not_a_running_one(client, server, recorder, tmp_path):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    job = create(client, file_id)
    with pytest.raises(together.BadRequestError, match="cancel it before deleting"):
        client.fine_tuning.delete(job.id)
    client.fine_tuning.cancel(job.id)
    server.advance(1000 * STEP_S)
    answer = client.fine_tuning.delete(job.id)
    assert job.id in (answer.message or "") and job.id not in server.state.jobs
    assert client.fine_tuning.list().data == []
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.delete(job.id)
    assert ("/fine-tunes/{id}", "delete", 200) in recorder.seen
    assert ("/fine-tunes/{id}", "delete", 404) in recorder.seen


def test_metrics_one_snapshot_per_step_run_filtered_by_step(client, server, recorder, tmp_path):
    file_id = client.files.upload(write(tmp_path, sentiment_rows())).id
    job = create(client, file_id)  # 4 steps
    assert client.fine_tuning.list_metrics(job.id).metrics == []  # nothing run yet
    server.advance(5 * STEP_S + 3 * STEP_S)
    three = client.fine_tuning.list_metrics(job.id).metrics
    assert [m["train/global_step"] for m in three] == [1, 2, 3]
    assert all(m["train/loss"] > 0 for m in three)
    assert three[0]["train/learning_rate"] == pytest.approx(1e-5)
    newer = client.fine_tuning.list_metrics(job.id, global_step_from=3).metrics
    assert newer == three[2:]
    assert ("/fine-tunes/{id}/metrics", "get", 200) in recorder.seen


def test_only_the_key_it_was_started_with_is_accepted(tmp_path, recorder):
    wrong = "tgp_v1_not-the-sandbox-key-0123456789"
    with TogetherSandboxServer(seconds_per_step=STEP_S, api_key="tgp_v1_the-right-key") as other:
        refused = make_client(other, recorder)
        refused.api_key = wrong
        with pytest.raises(together.AuthenticationError) as caught:
            refused.files.list()
        error = caught.value.body["error"] if isinstance(caught.value.body, dict) else {}
        assert error.get("code") == "invalid_api_key"
        assert wrong not in str(caught.value.body)
        accepted = make_client(other, recorder)
        assert accepted.api_key == "tgp_v1_the-right-key"
        assert accepted.files.list().data == []
    assert ("/files", "get", 401) in recorder.seen
