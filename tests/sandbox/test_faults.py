"""Each injected fault, as the real SDK experiences it over real HTTP."""

from __future__ import annotations

import json
import time

import openai
import pytest

from app.sandbox.faults import FaultPlan, FaultPlanError
from tests.sandbox.conftest import make_client, sentiment_rows, upload

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def create(client, train, tag="x"):
    return client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=train, metadata={"ftm_job": tag}
    )


def test_rate_limit_carries_retry_after_and_the_sdk_honours_it(server, client, spec_recorder):
    server.faults = FaultPlan().next(1, "rate_limit", "models.list", retry_after_s=0.05)
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    assert caught.value.status_code == 429
    assert caught.value.body["code"] == "rate_limit_exceeded"
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "50")

    server.faults = FaultPlan().next(2, "rate_limit", "models.list", retry_after_s=0.05)
    patient = make_client(server, spec_recorder, max_retries=2)
    started = time.monotonic()
    assert patient.models.list().data  # two 429s, then the answer
    assert time.monotonic() - started >= 0.1  # it waited as asked, twice
    assert server.faults.injected == {("models.list", "rate_limit"): 2}


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_errors(server, client, kind, status):
    server.faults = FaultPlan().next(1, kind, "files.list")
    with pytest.raises(openai.InternalServerError) as caught:
        client.files.list()
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "server_error"
    assert client.files.list().data == []  # only the next request was hit


def test_slow_answers_time_out_but_still_take_effect(server, spec_recorder):
    train = upload(make_client(server, spec_recorder), sentiment_rows())
    impatient = make_client(server, spec_recorder, timeout=0.2)
    server.faults = FaultPlan().next(1, "slow", "jobs.create", delay_s=0.6)
    with pytest.raises(openai.APITimeoutError):
        create(impatient, train, "slow-1")
    deadline = time.monotonic() + 5
    while not server.state.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    [job] = server.state.jobs.values()  # created server-side after the client gave up
    assert job.metadata == {"ftm_job": "slow-1"}


def test_drop_before_loses_the_request(server, client):
    train = upload(client, sentiment_rows())
    server.faults = FaultPlan().next(1, "drop_before", "jobs.create")
    with pytest.raises(openai.APIConnectionError):
        create(client, train)
    assert server.state.jobs == {}


def test_drop_after_creates_the_job_but_the_client_never_hears(server, client):
    train = upload(client, sentiment_rows())
    server.faults = FaultPlan().next(1, "drop_after", "jobs.create")
    with pytest.raises(openai.APIConnectionError) as caught:
        create(client, train, "lost-response")
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert len(server.state.jobs) == 1
    # What a careful client does before retrying: look the job up by its metadata.
    [found] = client.fine_tuning.jobs.list(metadata={"ftm_job": "lost-response"}).data
    assert found.id == next(iter(server.state.jobs))


def test_the_sdk_retrying_a_dropped_create_makes_a_duplicate(server, spec_recorder):
    """Why the provider must reconcile: the SDK's own retry creates a second, billed job."""
    train = upload(make_client(server, spec_recorder), sentiment_rows())
    retrying = make_client(server, spec_recorder, max_retries=1)
    server.faults = FaultPlan().next(1, "drop_after", "jobs.create")
    create(retrying, train, "dup")
    assert len(server.state.jobs) == 2


def test_probabilistic_faults_are_reproducible_with_a_seed(server, client):
    def run() -> list[bool]:
        server.faults = FaultPlan(seed=11).add("models.*", "server_error", probability=0.3)
        outcomes = []
        for _ in range(60):
            try:
                client.models.retrieve("gpt-4o-mini")
                outcomes.append(False)
            except openai.InternalServerError:
                outcomes.append(True)
        assert sum(outcomes) == server.faults.total_injected("server_error")
        return outcomes

    first = run()
    assert 8 <= sum(first) <= 30  # about 30% of 60
    assert run() == first
    assert client.files.list().data == []  # "models.*" leaves other routes alone


def test_a_count_with_a_probability_stops_after_count_faults(server, client):
    server.faults = FaultPlan(seed=3).add("*", "unavailable", probability=0.5, count=4)
    failures = 0
    for _ in range(80):
        try:
            client.models.list()
        except openai.InternalServerError:
            failures += 1
    assert failures == 4


def test_fault_plans_load_from_json_and_reject_mistakes(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(
        json.dumps(
            {
                "seed": 5,
                "rules": [
                    {"route": "jobs.create", "kind": "drop_after", "count": 2},
                    {
                        "route": "jobs.*",
                        "kind": "rate_limit",
                        "probability": 0.2,
                        "retry_after_s": 0.5,
                    },
                ],
            }
        )
    )
    plan = FaultPlan.from_file(path)
    assert [r.kind for r in plan.rules] == ["drop_after", "rate_limit"]
    assert FaultPlan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()

    for bad, message in [
        ({"rules": [{"route": "jobs.create", "kind": "explode"}]}, "unknown fault kind 'explode'"),
        ({"rules": [{"route": "job.create", "kind": "slow"}]}, "matches no route"),
        ({"rules": [{"route": "*", "kind": "slow", "probability": 2}]}, "not between 0 and 1"),
        ({"rules": [{"route": "*", "kind": "slow", "every": 2}]}, "unknown keys: every"),
        ({"rules": [{"kind": "slow"}]}, "needs a 'route' and a 'kind'"),
        ([1, 2], "a fault plan is an object"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(FaultPlanError, match=message) as caught:
            FaultPlan.from_file(path)
        assert str(path) in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(FaultPlanError, match="is not valid JSON"):
        FaultPlan.from_file(path)
