"""Every kind of response the sandbox gives is checked against the official spec (the
client fixture's hook validates each one); this module proves the checks bite, and that
one session covers every kind."""

from __future__ import annotations

import jsonschema
import openai
import pytest

from app.sandbox.faults import FaultPlan
from tests.openapi_spec import response_schema, spec_path, validate_response
from tests.sandbox.conftest import STEP_S, run_to_end, sentiment_rows, upload

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

JOB = {
    "object": "fine_tuning.job",
    "id": "ftjob-abc",
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1,
    "finished_at": None,
    "fine_tuned_model": None,
    "organization_id": "org-x",
    "result_files": [],
    "status": "running",
    "validation_file": None,
    "training_file": "file-abc",
    "hyperparameters": {"n_epochs": "auto", "batch_size": 1, "learning_rate_multiplier": 1.8},
    "trained_tokens": None,
    "error": None,
    "seed": 1,
    "metadata": None,
}


def test_the_validator_accepts_a_good_job_and_rejects_broken_ones():
    validate_response("/v1/fine_tuning/jobs/ftjob-abc", "get", 200, JOB)
    validate_response(
        "/fine_tuning/jobs/{fine_tuning_job_id}", "get", 200, {**JOB, "status": "paused"}
    )
    for broken in (
        {**JOB, "status": "exploded"},
        {**JOB, "error": {"message": "no code"}},
        {**JOB, "hyperparameters": {"n_epochs": 0}},
        {**JOB, "hyperparameters": {"learning_rate_multiplier": 0}},  # exclusive minimum 0
        {k: v for k, v in JOB.items() if k != "seed"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_response("/v1/fine_tuning/jobs/ftjob-abc", "get", 200, broken)


def test_errors_and_file_lists():
    error = {
        "error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}
    }
    validate_response("/v1/fine_tuning/jobs", "post", 400, error)
    with pytest.raises(jsonschema.ValidationError):
        validate_response("/v1/models", "get", 404, {"error": {"message": "no type"}})
    validate_response(
        "/v1/files",
        "get",
        200,
        {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False},
    )
    file = {
        "id": "file-1",
        "object": "file",
        "bytes": 1,
        "created_at": 1,
        "filename": "a",
        "purpose": "fine-tune",
        "status": "processed",
    }
    page = {
        "object": "list",
        "data": [file],
        "first_id": "file-1",
        "last_id": "file-1",
        "has_more": False,
    }
    validate_response("/v1/files", "get", 200, page)
    with pytest.raises(AssertionError, match="first_id"):
        validate_response("/v1/files", "get", 200, {**page, "first_id": "file-2"})
    with pytest.raises(jsonschema.ValidationError):
        validate_response("/v1/files", "get", 200, {**page, "data": [{**file, "purpose": "fun"}]})


def test_paths_and_schemas_resolve():
    assert (
        spec_path("/v1/fine_tuning/jobs/ftjob-1/checkpoints?limit=3")
        == "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"
    )
    assert spec_path("/v1/models/ft:gpt-4o-mini-2024-07-18:org::abc") == "/models/{model}"
    assert response_schema("/chat/completions", "post", 200) == {
        "$ref": "#/components/schemas/CreateChatCompletionResponse"
    }
    with pytest.raises(AssertionError, match="no path in the OpenAI spec"):
        spec_path("/v1/nowhere")
    assert response_schema("/models/{model}", "get", 404) == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


EXPECTED_KINDS = {
    ("/files", "post", 200),
    ("/files", "get", 200),
    ("/files/{file_id}", "get", 200),
    ("/files/{file_id}", "delete", 200),
    ("/files/{file_id}/content", "get", 200),
    ("/fine_tuning/jobs", "post", 200),
    ("/fine_tuning/jobs", "get", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}", "get", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}/cancel", "post", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}/pause", "post", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}/resume", "post", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}/events", "get", 200),
    ("/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", "get", 200),
    ("/models", "get", 200),
    ("/models/{model}", "get", 200),
    ("/models/{model}", "delete", 200),
    ("/chat/completions", "post", 200),
    ("/fine_tuning/jobs", "post", 400),
    ("/models", "get", 401),
    ("/models/{model}", "delete", 403),
    ("/fine_tuning/jobs/{fine_tuning_job_id}", "get", 404),
    ("/models", "get", 429),
    ("/files", "get", 500),
    ("/files", "get", 503),
}


def test_one_session_covers_every_response_kind(server, client, spec_recorder):
    train = upload(client, sentiment_rows())
    client.files.retrieve(train)
    client.files.content(train)
    client.files.list()
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=train, hyperparameters={"n_epochs": 2}
    )
    server.advance(6 * STEP_S)
    client.fine_tuning.jobs.pause(job.id)
    client.fine_tuning.jobs.resume(job.id)
    job = run_to_end(server, client, job.id)
    client.fine_tuning.jobs.list()
    client.fine_tuning.jobs.list_events(job.id)
    client.fine_tuning.jobs.checkpoints.list(job.id)
    client.fine_tuning.jobs.cancel(
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train).id
    )
    client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}]
    )
    client.models.list()
    client.models.retrieve(job.fine_tuned_model)
    client.models.delete(job.fine_tuned_model)
    client.files.delete(train)
    # Errors.
    for call, error in [
        (
            lambda: client.fine_tuning.jobs.create(model="nope", training_file=train),
            openai.BadRequestError,
        ),
        (lambda: client.with_options(api_key="bad").models.list(), openai.AuthenticationError),
        (lambda: client.models.delete("gpt-4o-mini"), openai.PermissionDeniedError),
        (lambda: client.fine_tuning.jobs.retrieve("ftjob-none"), openai.NotFoundError),
    ]:
        with pytest.raises(error):
            call()
    server.faults = (
        FaultPlan()
        .next(1, "rate_limit", "models.list")
        .next(1, "server_error", "files.list")
        .next(1, "unavailable", "files.list")
    )
    for call, error in [
        (client.models.list, openai.RateLimitError),
        (client.files.list, openai.InternalServerError),
        (client.files.list, openai.InternalServerError),
    ]:
        with pytest.raises(error):
            call()
    missing = EXPECTED_KINDS - spec_recorder.seen
    assert not missing, f"response kinds never exercised: {sorted(missing)}"
