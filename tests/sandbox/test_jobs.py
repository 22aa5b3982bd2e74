"""Job operations over real HTTP: failures, cancel, pause/resume, listing, events,
checkpoints, DPO, request errors and the service sunset."""

from __future__ import annotations

from datetime import UTC, date, datetime

import openai
import pytest

from app.sandbox.server import SERVICE_SUNSET, SandboxServer
from tests.sandbox.conftest import (
    STEP_S,
    jsonl,
    make_client,
    preference_rows,
    run_to_end,
    sentiment_rows,
    upload,
)

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

SMALL = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}}


def create(client, training_file, **options):
    options.setdefault("method", SMALL)
    options.setdefault("model", "gpt-4o-mini")
    return client.fine_tuning.jobs.create(training_file=training_file, **options)


# ------------------------------------------------------------------------ failures


def test_a_bad_line_fails_the_job_with_code_message_and_param(server, client):
    lines = jsonl(sentiment_rows()).decode().splitlines()
    lines[4] = '{"messages": [{"role": "user", "content": "half a line"}'
    train = client.files.create(
        file=("bad.jsonl", "\n".join(lines).encode()), purpose="fine-tune"
    ).id
    job = create(client, train)
    assert job.status == "validating_files"  # the file is checked asynchronously, as the API does

    job = run_to_end(server, client, job.id)
    assert job.status == "failed"
    assert job.error.code == "invalid_training_file"
    assert job.error.param == "training_file"
    assert job.error.message.startswith(
        "The job failed due to an invalid training file. Invalid file format. Line 5:"
    )
    assert job.fine_tuned_model is None and job.trained_tokens is None
    assert job.finished_at is not None
    events = client.fine_tuning.jobs.list_events(job.id).data
    assert events[0].level == "error" and events[0].message == "The job failed"


def test_too_few_examples_and_a_bad_validation_file_are_reported_separately(server, client):
    few = upload(client, sentiment_rows()[:3])
    job = run_to_end(server, client, create(client, few).id)
    assert (job.status, job.error.code, job.error.param) == (
        "failed",
        "invalid_training_file",
        "training_file",
    )
    assert "at least 10" in job.error.message

    rows = sentiment_rows()[:4]
    rows[1]["messages"][1]["role"] = "robot"
    valid = upload(client, rows, "valid.jsonl")
    job = run_to_end(
        server, client, create(client, upload(client, sentiment_rows()), validation_file=valid).id
    )
    assert (job.status, job.error.code, job.error.param) == (
        "failed",
        "invalid_validation_file",
        "validation_file",
    )
    assert "Line 2:" in job.error.message and "robot" in job.error.message


def test_a_chat_file_does_not_train_a_dpo_job(server, client):
    train = upload(client, sentiment_rows())
    job = create(client, train, method={"type": "dpo"})
    job = run_to_end(server, client, job.id)
    assert job.status == "failed"
    assert job.error.code == "invalid_training_file"
    assert "preference example" in job.error.message


# ------------------------------------------------------------- cancel, pause, resume


def test_cancel_is_final_and_a_second_cancel_is_refused(server, client):
    job = create(client, upload(client, sentiment_rows()))
    server.advance(5 * STEP_S + 2 * STEP_S)  # running, two steps in
    job = client.fine_tuning.jobs.cancel(job.id)
    assert job.status == "cancelled"
    assert job.finished_at is not None and job.fine_tuned_model is None

    server.advance(100 * STEP_S)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled"
    steps = [
        e.data["step"]
        for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data
        if e.type == "metrics"
    ]
    assert max(steps) == 2  # nothing trained after the cancel

    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.cancel(job.id)
    assert caught.value.status_code == 400
    assert (
        caught.value.body["message"]
        == f"Job {job.id} has already cancelled and cannot be cancelled."
    )
    assert caught.value.body["param"] == "fine_tuning_job_id"


def test_cancel_of_a_succeeded_job_is_refused(server, client):
    job = run_to_end(server, client, create(client, upload(client, sentiment_rows())).id)
    with pytest.raises(openai.BadRequestError, match="already succeeded"):
        client.fine_tuning.jobs.cancel(job.id)


def test_pause_holds_the_job_and_resume_carries_on_from_the_same_step(server, client):
    job = create(
        client,
        upload(client, sentiment_rows()),
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 4, "batch_size": 2}},
        },
    )
    with pytest.raises(openai.BadRequestError, match="validating_files"):
        client.fine_tuning.jobs.pause(job.id)  # nothing to pause while files are checked
    server.advance(5 * STEP_S + 7 * STEP_S)
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"  # a status the SDK does not know: passed through as is

    server.advance(500 * STEP_S)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert events[0].message == "Fine-tuning job paused at step 7"

    with pytest.raises(openai.BadRequestError, match="only a queued or running job"):
        client.fine_tuning.jobs.pause(job.id)
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    server.advance(2 * STEP_S)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"

    job = run_to_end(server, client, job.id)
    assert job.status == "succeeded"
    events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data))
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert steps == list(range(1, 25))  # 12 / 2 x 4 steps, each exactly once
    assert "Fine-tuning job resumed from step 7" in [e.message for e in events]
    with pytest.raises(openai.BadRequestError, match="only a paused job"):
        client.fine_tuning.jobs.resume(job.id)


# ------------------------------------------------------------------------ listing


def test_list_filters_by_metadata_and_pages_newest_first(server, client):
    train = upload(client, sentiment_rows())
    tagged = []
    for index in range(7):
        metadata = {"ftm_job": f"job-{index}", "team": "a" if index % 2 == 0 else "b"}
        job = create(client, train, metadata=metadata)
        if index % 2 == 0:
            tagged.append(job.id)
        server.advance(1.0)

    page = client.fine_tuning.jobs.list(metadata={"team": "a"}, limit=3)
    assert [j.id for j in page.data] == tagged[::-1][:3]
    assert page.has_more is True
    every = [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "a"}, limit=3)]
    assert every == tagged[::-1]  # the SDK pages on with after=<last id>
    second = client.fine_tuning.jobs.list(metadata={"team": "a"}, limit=3, after=page.data[-1].id)
    assert [j.id for j in second.data] == tagged[::-1][3:]
    assert second.has_more is False

    [found] = client.fine_tuning.jobs.list(metadata={"ftm_job": "job-4", "team": "a"}).data
    assert found.metadata == {"ftm_job": "job-4", "team": "a"}
    assert client.fine_tuning.jobs.list(metadata={"ftm_job": "job-4", "team": "b"}).data == []
    assert len(client.fine_tuning.jobs.list(limit=100).data) == 7 == len(server.state.jobs)


def test_events_are_newest_first_and_page_with_after(server, client):
    job = create(
        client,
        upload(client, sentiment_rows()),
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 6, "batch_size": 4}},
        },
    )
    job = run_to_end(server, client, job.id)
    everything = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert len(everything) > 20
    times = [e.created_at for e in everything]
    assert times == sorted(times, reverse=True)

    first = client.fine_tuning.jobs.list_events(job.id)
    assert len(first.data) == 20 and first.has_more  # the default limit is 20
    assert [e.id for e in first.data] == [e.id for e in everything[:20]]
    rest = client.fine_tuning.jobs.list_events(job.id, after=first.data[-1].id, limit=100)
    assert [e.id for e in rest.data] == [e.id for e in everything[20:]]
    assert rest.has_more is False
    assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=7)] == [
        e.id for e in everything
    ]


def test_checkpoints_one_per_epoch_and_only_the_last_three_kept(server, client):
    job = create(
        client,
        upload(client, sentiment_rows()),
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 5, "batch_size": 6}},
        },
    )
    server.advance(5 * STEP_S + 4 * STEP_S)  # two epochs of 2 steps
    early = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in early] == [4, 2]
    early_model = early[-1].fine_tuned_model_checkpoint
    assert client.models.retrieve(early_model).id == early_model  # usable while kept

    job = run_to_end(server, client, job.id)
    listing = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in listing.data] == [10, 8, 6]
    assert listing.first_id == listing.data[0].id and listing.last_id == listing.data[-1].id
    assert all(
        c.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{c.step_number}"
        for c in listing.data
    )
    assert all(
        c.fine_tuning_job_id == job.id and c.metrics.step == c.step_number for c in listing.data
    )
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(early_model)  # dropped with its checkpoint

    page = client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)
    assert [c.step_number for c in page.data] == [10, 8] and page.has_more
    after = client.fine_tuning.jobs.checkpoints.list(job.id, after=page.data[-1].id)
    assert [c.step_number for c in after.data] == [6] and not after.has_more


# ------------------------------------------------------------------------------ DPO


def test_dpo_job_trains_on_preferences(server, client):
    train = upload(client, preference_rows())
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-2024-08-06",
        training_file=train,
        suffix="prefs",
        method={
            "type": "dpo",
            "dpo": {"hyperparameters": {"beta": 0.3, "n_epochs": 1, "batch_size": 4}},
        },
    )
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.3
    job = run_to_end(server, client, job.id)
    assert job.status == "succeeded"
    assert job.method.dpo.hyperparameters.beta == 0.3
    assert job.hyperparameters.n_epochs == 1
    assert job.trained_tokens > 0
    answer = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": "Rude receptionist and a dirty lobby"}],
    )
    assert answer.choices[0].message.content == "negative"  # the preferred output


def test_dpo_is_refused_for_a_model_without_it(server, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(
            model="gpt-3.5-turbo",
            training_file=upload(client, preference_rows()),
            method={"type": "dpo"},
        )
    assert caught.value.body["param"] == "method.type"


# ------------------------------------------------------------------- request errors


@pytest.mark.parametrize(
    ("options", "param", "code"),
    [
        ({"model": "gpt-5-ultra"}, "model", "model_not_available"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
            "integer_below_min_value",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 51}}}},
            "method.supervised.hyperparameters.n_epochs",
            "integer_above_max_value",
        ),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"batch_size": 257}},
                }
            },
            "method.supervised.hyperparameters.batch_size",
            "integer_above_max_value",
        ),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"learning_rate_multiplier": -1}},
                }
            },
            "method.supervised.hyperparameters.learning_rate_multiplier",
            "decimal_below_min_value",
        ),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}},
            "method.dpo.hyperparameters.beta",
            "decimal_above_max_value",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}},
            "method.supervised.hyperparameters.beta",
            "unknown_parameter",
        ),
        ({"method": {"type": "reinforcement"}}, "method.type", "unsupported_method"),
        ({"hyperparameters": {"n_epochs": "many"}}, "hyperparameters.n_epochs", "invalid_value"),
        ({"suffix": "x" * 65}, "suffix", "string_above_max_length"),
        ({"seed": "7"}, "seed", "invalid_type"),
        (
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "object_above_max_properties",
        ),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"training_file": "file-nope"}, "training_file", "file_not_found"),
    ],
)
def test_bad_create_requests_get_400_naming_the_parameter(server, client, options, param, code):
    body = {"model": "gpt-4o-mini", "training_file": upload(client, sentiment_rows()), **options}
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(**body)
    error = caught.value.body
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert error["message"]
    assert server.state.jobs == {}  # nothing half-created


def test_a_results_file_cannot_train(server, client):
    job = run_to_end(server, client, create(client, upload(client, sentiment_rows())).id)
    with pytest.raises(openai.BadRequestError, match="purpose 'fine-tune'"):
        create(client, job.result_files[0])


def test_unknown_job_is_404(server, client):
    for call in (
        client.fine_tuning.jobs.retrieve,
        client.fine_tuning.jobs.cancel,
        client.fine_tuning.jobs.list_events,
        client.fine_tuning.jobs.checkpoints.list,
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call("ftjob-doesnotexist")
        assert caught.value.body["code"] == "fine_tuning_job_not_found"


def test_a_fine_tuned_model_can_be_trained_further(server, client):
    train = upload(client, sentiment_rows())
    first = run_to_end(server, client, create(client, train).id)
    second = run_to_end(
        server, client, create(client, train, suffix="again", model=first.fine_tuned_model).id
    )
    assert second.model == first.fine_tuned_model
    assert second.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:sandbox:again:")


# ------------------------------------------------------------------------ sunset


def test_job_creation_is_refused_after_the_service_sunset(tmp_path, spec_recorder):
    after = datetime(2027, 1, 7, 9, 0, tzinfo=UTC)
    with SandboxServer(
        port=0, start=after, frozen=True, sunset=SERVICE_SUNSET, data_dir=tmp_path / "s"
    ) as late:
        client = make_client(late, spec_recorder)
        train = client.files.create(
            file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune"
        ).id
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
        assert caught.value.status_code == 403
        assert caught.value.body["code"] == "training_not_available"
        assert "after 2027-01-06" in caught.value.body["message"]
        assert late.state.jobs == {}
        # Everything else keeps working: models still serve.
        assert (
            client.models.retrieve("gpt-4o-mini-2024-07-18").shutdown_date
            == date(2027, 1, 14).isoformat()
        )


def test_the_last_day_still_accepts_jobs_and_the_switch_is_settable(tmp_path, spec_recorder):
    last_day = datetime(2027, 1, 6, 23, 59, tzinfo=UTC)
    with SandboxServer(
        port=0, start=last_day, frozen=True, sunset=SERVICE_SUNSET, data_dir=tmp_path / "s"
    ) as edge:
        client = make_client(edge, spec_recorder)
        train = client.files.create(
            file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune"
        ).id
        assert (
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train).status
            == "validating_files"
        )
        edge.advance(120)  # past midnight
        with pytest.raises(openai.PermissionDeniedError):
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
        edge.state.sunset = None  # the switch, flipped on a running server
        assert client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train).id


def test_bad_paging_and_unknown_routes_answer_in_the_api_style(server, client):
    job = create(client, upload(client, sentiment_rows()))
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.list_events(job.id, after="ftevent-unknown")
    assert caught.value.body["param"] == "after"
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.list(limit=101)
    assert caught.value.body["param"] == "limit"
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/fine_tuning/nowhere", cast_to=object)
    assert caught.value.body == {
        "message": "Invalid URL (GET /v1/fine_tuning/nowhere)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    # A job still validating its files can be cancelled.
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
