"""A job's whole life over real HTTP with the real SDK: create -> validating_files ->
queued -> running -> succeeded, with events, checkpoints, tokens and the result file."""

from __future__ import annotations

import csv
import io
import math
import re
import time

import openai
import pytest

from app.sandbox.server import SandboxServer
from app.tokens import get_encoding
from tests.sandbox.conftest import (
    START,
    STEP_S,
    jsonl,
    make_client,
    run_to_end,
    sentiment_rows,
    upload,
)

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def recipe_tokens(messages: list[dict]) -> int:
    """The data-prep recipe's count, written out independently of the sandbox."""
    encoding = get_encoding("o200k_base")
    total = 3
    for message in messages:
        total += 3 + sum(len(encoding.encode(v)) for v in message.values() if isinstance(v, str))
    return total


def test_job_walks_through_every_status_on_the_clock(server, client):
    train = upload(client, sentiment_rows())
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=train,
        suffix="reviews",
        seed=42,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4}},
        },
    )
    assert job.status == "validating_files"
    assert job.model == "gpt-4o-mini-2024-07-18"  # the alias resolves to the dated snapshot
    assert job.created_at == int(START.timestamp())
    assert job.fine_tuned_model is None and job.trained_tokens is None and job.finished_at is None
    assert job.hyperparameters.learning_rate_multiplier == "auto"

    server.advance(3 * STEP_S)  # validation takes 3 steps' worth
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "queued"
    assert job.hyperparameters.learning_rate_multiplier == 1.8  # resolved once validated

    server.advance(2 * STEP_S)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "running"
    total_steps = math.ceil(12 / 4) * 3
    assert job.estimated_finish == int(START.timestamp() + 5 + total_steps)

    server.advance(4 * STEP_S)
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    metric_steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert metric_steps == [4, 3, 2, 1]  # newest first, one per step so far

    job = run_to_end(server, client, job.id)
    assert job.status == "succeeded"
    assert re.fullmatch(
        r"ft:gpt-4o-mini-2024-07-18:sandbox:reviews:[A-Za-z0-9]{8}", job.fine_tuned_model
    )
    # It finished when the last step did, not when someone looked.
    assert job.finished_at == int(START.timestamp() + 5 + total_steps)
    billable = sum(recipe_tokens(row["messages"]) for row in sentiment_rows())
    assert job.trained_tokens == billable * 3

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in reversed(events)]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert "Fine-tuning job started" in messages
    assert messages[-1] == "The job has successfully completed"
    assert f"New fine-tuned model created: {job.fine_tuned_model}" in messages
    metrics = [e for e in reversed(events) if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, total_steps + 1))
    assert all(e.data["total_steps"] == total_steps for e in metrics)
    losses = [e.data["train_loss"] for e in metrics]
    assert losses[-1] < losses[0] / 2  # it learns
    assert [m for m in messages if m.startswith("Checkpoint created")] == [
        "Checkpoint created at step 3",
        "Checkpoint created at step 6",
        "Checkpoint created at step 9",
    ]

    [result_id] = job.result_files
    result = client.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(result_id).text)))
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    ]
    assert [int(r["step"]) for r in rows] == list(range(1, total_steps + 1))
    assert [float(r["train_loss"]) for r in rows] == losses
    assert all(r["valid_loss"] == "" for r in rows)  # no validation file, no validation cells


def test_validation_file_adds_validation_metrics(server, client):
    train = upload(client, sentiment_rows())
    valid = upload(client, sentiment_rows()[:4], "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini-2025-04-14",
        training_file=train,
        validation_file=valid,
        hyperparameters={"n_epochs": 2, "batch_size": 2},  # the deprecated top-level form
    )
    job = run_to_end(server, client, job.id)
    assert job.status == "succeeded"
    assert job.validation_file == valid
    assert job.fine_tuned_model.startswith(
        "ft:gpt-4.1-mini-2025-04-14:sandbox::"
    )  # no suffix: '::'
    rows = list(csv.DictReader(io.StringIO(client.files.content(job.result_files[0]).text)))
    assert len(rows) == 12
    assert all(r["valid_loss"] for r in rows)  # 12 steps: validated on every one
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert {"full_valid_loss", "valid_loss", "train_loss"} <= set(
        checkpoints[0].metrics.model_dump(exclude_none=True)
    )


def test_auto_hyperparameters_follow_the_published_rule(server, client):
    train = upload(client, sentiment_rows())
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=train)
    server.advance(3 * STEP_S)
    job = client.fine_tuning.jobs.retrieve(job.id)
    # 12 examples x 3 < 100 -> min(25, 100 // 12) = 8 epochs; batch 1; lr 1.8.
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (8, 1)
    assert job.method.supervised.hyperparameters.n_epochs == 8


def test_the_clock_runs_by_itself_for_embedders(tmp_path, spec_recorder):
    """The provider's tests use a running clock with tiny steps: jobs finish in wall time."""
    with SandboxServer(port=0, seconds_per_step=0.002, data_dir=tmp_path / "s") as live:
        client = make_client(live, spec_recorder)
        train = client.files.create(
            file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune"
        ).id
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=train,
            hyperparameters={"n_epochs": 2, "batch_size": 4},
        )
        deadline = time.monotonic() + 20
        while job.status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.01)
            job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded"
        assert job.created_at <= job.finished_at <= time.time() + 1


def test_missing_or_malformed_api_key_is_refused_like_the_api(server, client):
    response = httpx_get(server.base_url + "/models", None)
    assert response.status_code == 401
    assert "You didn't provide an API key" in response.json()["error"]["message"]
    response = httpx_get(server.base_url + "/models", "Bearer not-a-key-123456")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "not-a-key-123456" not in error["message"]  # never echo a whole secret
    bad = openai.OpenAI(base_url=server.base_url, api_key="wrong-key-abcdef", max_retries=0)
    try:
        bad.models.list()
    except openai.AuthenticationError as exc:
        assert exc.status_code == 401
    else:
        raise AssertionError("a malformed key was accepted")


def httpx_get(url: str, authorization: str | None):
    import httpx

    headers = {"authorization": authorization} if authorization else {}
    return httpx.get(url, headers=headers)


def test_result_files_can_be_base64_like_the_live_service(tmp_path, spec_recorder):
    import base64

    with SandboxServer(
        port=0, seconds_per_step=0.0, frozen=True, base64_result_files=True, data_dir=tmp_path / "s"
    ) as server:
        client = make_client(server, spec_recorder)
        train = client.files.create(
            file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune"
        ).id
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=train,
            hyperparameters={"n_epochs": 1, "batch_size": 4},
        )
        # Zero-length phases: the job is done by the next time anyone looks.
        job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded"
        text = base64.b64decode(client.files.content(job.result_files[0]).content).decode()
        assert (
            text.splitlines()[0]
            == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
        )
        assert len(text.splitlines()) == 1 + 3
