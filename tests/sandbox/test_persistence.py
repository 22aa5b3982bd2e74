"""The optional state file: a restarted sandbox keeps its files, jobs and models."""

from __future__ import annotations

import pytest

from app.sandbox.server import SandboxServer
from tests.sandbox.conftest import START, make_client, run_to_end, sentiment_rows, upload

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_a_restarted_server_keeps_everything_and_never_reuses_an_id(tmp_path, spec_recorder):
    state_file = tmp_path / "sandbox" / "state.json"
    options = {
        "start": START,
        "frozen": True,
        "seed": 1,
        "state_file": state_file,
        "seconds_per_step": 1.0,
    }
    with SandboxServer(**options) as first:
        client = make_client(first, spec_recorder)
        train = upload(client, sentiment_rows())
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=train,
            hyperparameters={"n_epochs": 1},
            metadata={"k": "v"},
        )
        job = run_to_end(first, client, job.id)
        running = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train).id
        stopped_at = first.clock.now()

    with SandboxServer(**options) as second:  # same seed: the generator repeats itself
        client = make_client(second, spec_recorder)
        assert second.clock.now() == stopped_at  # the clock resumes where it stopped
        again = client.fine_tuning.jobs.retrieve(job.id)
        assert again.model_dump() == job.model_dump()
        assert client.fine_tuning.jobs.retrieve(running).status == "validating_files"
        assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert (
            client.chat.completions.create(
                model=job.fine_tuned_model,
                messages=[{"role": "user", "content": "Great value and a friendly host"}],
            )
            .choices[0]
            .message.content
            == "positive"
        )
        new_file = upload(client, sentiment_rows())
        assert new_file != train and {train, new_file} <= set(second.state.files)
        assert [j.id for j in client.fine_tuning.jobs.list(metadata={"k": "v"})] == [job.id]


def test_an_unreadable_state_file_is_reported(tmp_path):
    state_file = tmp_path / "state.json"
    state_file.write_text("{broken")
    with pytest.raises(ValueError, match="cannot read the sandbox state file"):
        SandboxServer(state_file=state_file)
    state_file.write_text('{"version": 99}')
    with pytest.raises(ValueError, match="another version of the sandbox"):
        SandboxServer(state_file=state_file)
