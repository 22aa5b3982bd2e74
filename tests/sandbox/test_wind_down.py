"""The service's staged wind-down, through the real openai SDK over real HTTP, every
response checked against the official OpenAPI spec (OpenAI's announcement of 2026-05-07):
orgs that never fine-tuned lost job creation on 2026-05-07, orgs without
fine-tuned inference in the previous 60 days on 2026-07-02, every org after 2027-01-06.
A refused create is HTTP 403 with code ``training_not_available``."""

from __future__ import annotations

from datetime import UTC, datetime

import openai
import pytest

from app.sandbox.server import SERVICE_SUNSET, SandboxServer
from app.sandbox.wind_down import OrgHistory
from tests.sandbox.conftest import STEP_S, jsonl, make_client, run_to_end, sentiment_rows

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

DAY_S = 86_400.0


def _server(tmp_path, day: str, org) -> SandboxServer:
    start = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    return SandboxServer(
        port=0,
        seconds_per_step=STEP_S,
        start=start,
        frozen=True,
        sunset=SERVICE_SUNSET,
        org=org,
        data_dir=tmp_path / "s",
    )


def _create(client: openai.OpenAI):
    train = client.files.create(file=("t.jsonl", jsonl(sentiment_rows())), purpose="fine-tune")
    return client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)


def _refused(client: openai.OpenAI) -> dict:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        _create(client)
    assert caught.value.status_code == 403
    body = caught.value.body
    assert body["code"] == "training_not_available"
    assert body["type"] == "invalid_request_error" and body["param"] is None
    return body


@pytest.mark.parametrize(
    ("org", "last_open_day", "first_closed_day", "why"),
    [
        ("inactive", "2026-07-01", "2026-07-02", "inference in the 60 days before it"),
        (
            "active",
            "2027-01-06",
            "2027-01-07",
            "stopped accepting new fine-tuning jobs after 2027-01-06",
        ),
    ],
)
def test_each_stage_closes_creation_on_its_day(
    tmp_path, spec_recorder, org, last_open_day, first_closed_day, why
):
    with _server(tmp_path, last_open_day, org) as server:
        client = make_client(server, spec_recorder)
        assert _create(client).status == "validating_files"
        server.advance(DAY_S)
        assert server.clock.today().isoformat() == first_closed_day
        body = _refused(client)
        assert why in body["message"]
        assert len(server.state.jobs) == 1  # the refused create made nothing
        # Everything else keeps working: listing jobs, reading models.
        assert len(client.fine_tuning.jobs.list().data) == 1
        assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_an_org_keeps_creation_through_fine_tuned_inference_in_the_window(tmp_path, spec_recorder):
    """The history is the sandbox's own record: a job created before the announcement
    makes the org one that fine-tuned; a chat with its fine-tuned model inside the 60 days
    before 2026-07-02 keeps creation open on 2026-07-02."""
    with _server(tmp_path, "2026-05-01", OrgHistory()) as server:
        client = make_client(server, spec_recorder)
        job = run_to_end(server, client, _create(client).id)
        assert job.status == "succeeded"
        server.advance(40 * DAY_S)  # 2026-06-10: inside the window (2026-05-03..07-01)
        client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "Great value"}]
        )
        server.advance(datetime(2026, 7, 2, 12, tzinfo=UTC).timestamp() - server.clock.now())
        assert server.clock.today().isoformat() == "2026-07-02"
        assert _create(client).status == "validating_files"


def test_inference_before_the_window_does_not_keep_creation_open(tmp_path, spec_recorder):
    with _server(tmp_path, "2026-05-01", OrgHistory()) as server:
        client = make_client(server, spec_recorder)
        job = run_to_end(server, client, _create(client).id)
        # 2026-05-01: one day before the window (2026-05-03..2026-07-01) opens.
        client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "Great value"}]
        )
        server.advance(DAY_S)  # 2026-05-02: fine-tuned before the announcement: still open
        assert _create(client).status == "validating_files"
        server.advance(datetime(2026, 7, 2, 12, tzinfo=UTC).timestamp() - server.clock.now())
        assert server.clock.today().isoformat() == "2026-07-02"
        _refused(client)
        # Its fine-tuned model keeps serving.
        reply = client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "Great value"}]
        )
        assert reply.choices[0].message.content


def test_an_org_that_never_fine_tuned_is_refused_from_the_announcement(tmp_path, spec_recorder):
    with _server(tmp_path, "2026-05-07", "new") as server:
        body = _refused(make_client(server, spec_recorder))
        assert "since 2026-05-07 only organizations that have fine-tuned before" in body["message"]
        assert server.state.org_history.fine_tuned is False and server.state.jobs == {}
    # The day before, the same org could still create: and then it had fine-tuned.
    with _server(tmp_path, "2026-05-06", "new") as server:
        client = make_client(server, spec_recorder)
        assert _create(client).status == "validating_files"
        server.advance(DAY_S)
        assert _create(client).status == "validating_files"


def test_the_org_history_survives_a_restart(tmp_path):
    state_file = tmp_path / "state.json"
    start = datetime(2026, 5, 20, 12, tzinfo=UTC)

    def serve() -> SandboxServer:
        return SandboxServer(
            port=0,
            seconds_per_step=STEP_S,
            start=start,
            frozen=True,
            org=OrgHistory(),
            state_file=state_file,
        )

    with serve() as server:
        client = make_client(server, None)
        server.state.org_history.fine_tuned = True  # it fine-tuned before the announcement
        job = run_to_end(server, client, _create(client).id)
        client.chat.completions.create(
            model=job.fine_tuned_model, messages=[{"role": "user", "content": "Great value"}]
        )
        server.state.save()
    with serve() as again:
        history = again.state.org_history
        assert history.fine_tuned is True
        assert [d.isoformat() for d in history.inference_days] == ["2026-05-20"]
