"""Files, models and chat completions over real HTTP: a fine-tuned model answers what it
was trained on; a base model does not (zero-shot) but follows in-context examples."""

from __future__ import annotations

import openai
import pytest

from app.sandbox.responder import GENERIC_REPLY
from app.tokens import get_encoding
from tests.sandbox.conftest import SENTIMENT, jsonl, run_to_end, sentiment_rows, upload

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture
def tuned(server, client) -> str:
    """A fine-tuned sentiment classifier."""
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=upload(client, sentiment_rows()),
        suffix="sentiment",
        hyperparameters={"n_epochs": 1, "batch_size": 4},
    )
    job = run_to_end(server, client, job.id)
    assert job.status == "succeeded"
    return job.fine_tuned_model


def ask(
    client,
    model: str,
    text: str,
    system: str | None = "Classify the review as positive or negative.",
):
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    return client.chat.completions.create(model=model, messages=messages)


# ------------------------------------------------------------------------------ files


def test_files_upload_list_retrieve_content_delete(server, client):
    data = jsonl(sentiment_rows())
    first = client.files.create(file=("a.jsonl", data), purpose="fine-tune")
    second = client.files.create(file=("b.jsonl", b'{"x": 1}\n'), purpose="batch")
    assert (first.object, first.purpose, first.status, first.bytes) == (
        "file",
        "fine-tune",
        "processed",
        len(data),
    )
    assert client.files.retrieve(first.id).filename == "a.jsonl"
    assert client.files.content(first.id).content == data

    listing = client.files.list()
    assert [f.id for f in listing.data] == [second.id, first.id]  # newest first by default
    assert [f.id for f in client.files.list(purpose="fine-tune").data] == [first.id]
    assert [f.id for f in client.files.list(order="asc", limit=1).data] == [first.id]

    deleted = client.files.delete(first.id)
    assert (deleted.id, deleted.deleted) == (first.id, True)
    with pytest.raises(openai.NotFoundError, match=f"No such File object: {first.id}"):
        client.files.retrieve(first.id)
    client.files.delete(second.id)
    assert client.files.list().data == []


def test_a_fine_tune_upload_must_be_jsonl(server, client):
    with pytest.raises(openai.BadRequestError, match="Must be .jsonl"):
        client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="training")
    assert caught.value.body["param"] == "purpose"


# ----------------------------------------------------------------------------- models


def test_models_list_base_models_with_shutdown_dates_and_fine_tuned_ones(server, client, tuned):
    models = {m.id: m for m in client.models.list()}
    assert models["gpt-4o-mini-2024-07-18"].owned_by == "system"
    assert models["gpt-4o-mini-2024-07-18"].shutdown_date == "2027-01-14"
    assert models["gpt-4.1-nano-2025-04-14"].shutdown_date is None
    assert tuned in models and models[tuned].owned_by == "org-sandbox"
    assert client.models.retrieve(tuned).id == tuned


def test_deleting_a_fine_tuned_model_makes_it_unknown(server, client, tuned):
    result = client.models.delete(tuned)
    assert (result.id, result.deleted, result.object) == (tuned, True, "model")
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(tuned)
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        ask(client, tuned, "Great value and a friendly host")
    assert tuned not in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.models.delete(tuned)


def test_base_models_cannot_be_deleted(server, client):
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("gpt-4o-mini-2024-07-18")


# ------------------------------------------------------------------------------- chat


def test_the_fine_tuned_model_answers_its_trained_labels(server, client, tuned):
    for text, label in SENTIMENT:
        answer = ask(client, tuned, text)
        assert answer.choices[0].message.content == label
        assert answer.model == tuned
    # Normalized exact recall: case and spacing do not matter.
    assert (
        ask(client, tuned, "  GREAT value and a   friendly host ").choices[0].message.content
        == "positive"
    )
    # Unseen text: the nearest training example's label (shares "cold", "shower", "wifi"...).
    assert (
        ask(client, tuned, "the shower was cold and the wifi broke").choices[0].message.content
        == "negative"
    )
    assert (
        ask(client, tuned, "a lovely view and spotless rooms").choices[0].message.content
        == "positive"
    )


def test_the_base_model_zero_shot_does_not_know_the_labels(server, client):
    answer = ask(client, "gpt-4o-mini", "Great value and a friendly host")
    content = answer.choices[0].message.content
    assert content == GENERIC_REPLY.format(model="gpt-4o-mini-2024-07-18")
    assert "positive" not in content and "negative" not in content
    assert answer.model == "gpt-4o-mini-2024-07-18"


def test_the_base_model_follows_few_shot_examples(server, client):
    shots = [
        {"role": "system", "content": "Classify the review."},
        {"role": "user", "content": "Terrible service, cold soup"},
        {"role": "assistant", "content": "NEG"},
        {"role": "user", "content": "Fantastic breakfast and a friendly host"},
        {"role": "assistant", "content": "POS"},
    ]
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[*shots, {"role": "user", "content": "cold soup and rude service"}],
    )
    assert answer.choices[0].message.content == "NEG"
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[*shots, {"role": "user", "content": "a friendly host"}]
    )
    assert answer.choices[0].message.content == "POS"
    # Nothing in common with any shot: back to the generic answer.
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[*shots, {"role": "user", "content": "zzz qqq"}]
    )
    assert answer.choices[0].message.content.startswith("I'm a general-purpose assistant")


def test_usage_counts_tokens_like_the_api(server, client, tuned):
    encoding = get_encoding("o200k_base")
    system, text = "Classify the review as positive or negative.", "Great value and a friendly host"
    answer = ask(client, tuned, text, system)
    expected_prompt = (
        3
        + (3 + len(encoding.encode("system")) + len(encoding.encode(system)))
        + (3 + len(encoding.encode("user")) + len(encoding.encode(text)))
    )
    assert answer.usage.prompt_tokens == expected_prompt
    assert answer.usage.completion_tokens == len(encoding.encode("positive"))
    assert answer.usage.total_tokens == expected_prompt + answer.usage.completion_tokens
    assert answer.choices[0].finish_reason == "stop"


def test_max_tokens_cuts_the_reply(server, client):
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=3
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3
    assert len(get_encoding("o200k_base").encode(answer.choices[0].message.content)) <= 3


def test_chat_errors(server, client):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "ft:gpt-4o-mini-2024-07-18:sandbox::nothere1", "hi")
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.body["param"] == "messages"
