"""Dedicated endpoints and hardware on the Together emulator, over real HTTP with the real
``together`` SDK's client, every response checked against Together's vendored spec.

The SDK (3.x) has ``client.endpoints.*`` on a newer project-scoped API
(``/v2/projects/{id}/endpoints``) the vendored spec lacks, so these tests call the spec's
``/v1/endpoints`` routes through the same SDK client's generic ``get``/``post``/``patch``/
``delete`` (its auth, retries off, error classes).
"""

# The emulator's fixtures are imported from its test module, so pytest's fixture
# arguments shadow the imported names by design.
# ruff: noqa: F811

from __future__ import annotations

import math
from pathlib import Path
from types import NoneType

import pytest
import together

from app.sandbox.faults import FaultPlan
from app.sandbox.together.endpoints import PENDING_STEPS, STARTING_STEPS
from app.sandbox.together.server import TogetherSandboxServer
from tests.sandbox.conftest import START, sentiment_rows
from tests.sandbox.test_together_emulator import (  # noqa: F401  (fixtures)
    SMALL,
    STEP_S,
    client,
    create,
    make_client,
    recorder,
    server,
    write,
)

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

A100 = "1x_nvidia_a100_80gb_sxm"
A100_CENTS_PER_MINUTE = 2.71  # hardware.py's table, restated: a changed rate must fail here
UP_S = (PENDING_STEPS + STARTING_STEPS) * STEP_S


def new_endpoint(sdk: together.Together, model: str, **fields) -> dict:
    body = {
        "model": model,
        "hardware": A100,
        "autoscaling": {"min_replicas": 1, "max_replicas": 2},
        **fields,
    }
    return sdk.post("/v1/endpoints", body=body, cast_to=object)


def get(sdk: together.Together, endpoint_id: str) -> dict:
    return sdk.get(f"/v1/endpoints/{endpoint_id}", cast_to=object)


def ask(sdk: together.Together, model: str, text: str) -> str:
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content


def finished_fine_tune(sdk: together.Together, server, tmp_path: Path) -> str:
    file_id = sdk.files.upload(write(tmp_path, sentiment_rows())).id
    job = create(sdk, file_id)
    server.advance(1000 * STEP_S)
    return sdk.fine_tuning.retrieve(job.id).model_output_name


def test_hardware_lists_the_rate_table(client, recorder):
    listed = client.get("/v1/hardware", cast_to=object)
    rates = {hw["id"]: hw["pricing"]["cents_per_minute"] for hw in listed["data"]}
    assert rates[A100] == A100_CENTS_PER_MINUTE
    assert rates["2x_nvidia_a100_80gb_sxm"] == 2 * A100_CENTS_PER_MINUTE
    assert ("/hardware", "get", 200) in recorder.seen


def test_a_fine_tune_on_an_endpoint_starts_answers_stops_and_is_billed_per_minute(
    client, server, recorder, tmp_path
):
    output_name = finished_fine_tune(client, server, tmp_path)
    with pytest.raises(together.BadRequestError, match="dedicated endpoint"):
        ask(client, output_name, "The soup was cold")

    endpoint = new_endpoint(client, output_name, display_name="sentiment")
    assert endpoint["state"] == "PENDING" and endpoint["model"] == output_name
    with pytest.raises(together.BadRequestError, match="is PENDING: it answers once STARTED"):
        ask(client, endpoint["name"], "The soup was cold")
    server.advance(PENDING_STEPS * STEP_S)
    assert get(client, endpoint["id"])["state"] == "STARTING"
    server.advance(STARTING_STEPS * STEP_S)
    assert get(client, endpoint["id"])["state"] == "STARTED"
    # the fine-tune answers from its training examples, by the endpoint's name or its own
    example = sentiment_rows()[1]["messages"]
    prompt, expected = example[-2]["content"], example[-1]["content"]
    assert expected == "negative"
    assert ask(client, endpoint["name"], prompt) == expected
    assert ask(client, output_name, prompt) == expected

    assert server.state.endpoint_cost_cents(endpoint["id"]) == 0  # nothing run yet
    server.advance(125.0)  # three started minutes
    three = 3 * A100_CENTS_PER_MINUTE
    assert server.state.endpoint_cost_cents(endpoint["id"]) == pytest.approx(three)
    stopped = client.patch(
        f"/v1/endpoints/{endpoint['id']}", body={"state": "STOPPED"}, cast_to=object
    )
    assert stopped["state"] == "STOPPED"
    server.advance(3600.0)  # a stopped endpoint costs nothing
    assert server.state.endpoint_cost_cents(endpoint["id"]) == pytest.approx(three)
    with pytest.raises(together.BadRequestError, match="dedicated endpoint"):
        ask(client, output_name, prompt)

    restarted = client.patch(
        f"/v1/endpoints/{endpoint['id']}", body={"state": "STARTED"}, cast_to=object
    )
    assert restarted["state"] == "PENDING"  # through the same phases again
    server.advance(UP_S + 30.0)
    expected_cents = (3 + math.ceil(30.0 / 60)) * A100_CENTS_PER_MINUTE
    assert server.state.endpoint_cost_cents(endpoint["id"]) == pytest.approx(expected_cents)

    listed = client.get("/v1/endpoints", cast_to=object)["data"]
    assert [(e["id"], e["state"]) for e in listed] == [(endpoint["id"], "STARTED")]
    assert client.delete(f"/v1/endpoints/{endpoint['id']}", cast_to=NoneType) is None
    with pytest.raises(together.NotFoundError):
        get(client, endpoint["id"])
    for seen in [
        ("/endpoints", "post", 200),
        ("/endpoints/{endpointId}", "get", 200),
        ("/endpoints/{endpointId}", "patch", 200),
        ("/endpoints/{endpointId}", "delete", 204),
        ("/endpoints/{endpointId}", "get", 404),
        ("/endpoints", "get", 200),
    ]:
        assert seen in recorder.seen, seen


def test_replicas_multiply_the_rate(client, server):
    endpoint = new_endpoint(client, SMALL, autoscaling={"min_replicas": 2, "max_replicas": 4})
    server.advance(UP_S + 60.0)
    assert server.state.endpoint_cost_cents(endpoint["id"]) == pytest.approx(
        2 * A100_CENTS_PER_MINUTE
    )


def test_refusals_name_what_to_fix(client, server, recorder):
    with pytest.raises(together.NotFoundError, match="completed fine-tune"):
        new_endpoint(client, "nobody/nothing")
    with pytest.raises(together.BadRequestError, match="1x_nvidia_a100_80gb_sxm"):
        new_endpoint(client, SMALL, hardware="1x_abacus")
    with pytest.raises(together.BadRequestError, match="min_replicas"):
        new_endpoint(client, SMALL, autoscaling={"min_replicas": 3, "max_replicas": 1})
    with pytest.raises(together.BadRequestError, match="STARTED or STOPPED"):
        created = new_endpoint(client, SMALL)
        client.patch(f"/v1/endpoints/{created['id']}", body={"state": "PAUSED"}, cast_to=object)
    assert len(server.state.endpoints) == 1
    assert ("/endpoints", "post", 404) in recorder.seen


def test_the_fault_plan_applies_to_the_endpoint_routes(client, server):
    server.faults = FaultPlan().next(1, "rate_limit", "endpoints.create")
    with pytest.raises(together.RateLimitError):
        new_endpoint(client, SMALL)
    assert not server.state.endpoints
    assert new_endpoint(client, SMALL)["state"] == "PENDING"
    server.faults = FaultPlan().next(1, "server_error", "hardware.list")
    with pytest.raises(together.InternalServerError):
        client.get("/v1/hardware", cast_to=object)


def test_endpoints_and_their_bill_survive_a_restart(tmp_path):
    state_file = tmp_path / "tg" / "state.json"
    state_file.parent.mkdir()
    options = {"seconds_per_step": STEP_S, "start": START, "frozen": True}
    with TogetherSandboxServer(state_file=state_file, **options) as first:
        sdk = make_client(first, None)
        endpoint = new_endpoint(sdk, SMALL)
        first.advance(UP_S + 60.0)
        sdk.patch(f"/v1/endpoints/{endpoint['id']}", body={"state": "STOPPED"}, cast_to=object)
    with TogetherSandboxServer(state_file=state_file, **options) as second:
        sdk = make_client(second, None)
        assert get(sdk, endpoint["id"])["state"] == "STOPPED"
        assert second.state.endpoint_cost_cents(endpoint["id"]) == pytest.approx(
            A100_CENTS_PER_MINUTE
        )
