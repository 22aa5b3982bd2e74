"""Deployments on the Together emulator: `ftm deploy` records a dedicated endpoint priced
from ``/hardware``, deploys once, stops (the emulator's bill stops growing), deletes, and
idle limits stop it on the emulator's clock. Real HTTP, the real ``together`` SDK, a real
database; ftm's clock is the emulator's, so cost to date is compared with its own bill."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.deployments.idle import enforce_idle_stops, idle_warnings
from app.deployments.service import delete, deploy, get, list_deployments, stop
from app.gateway.request_log import RequestLog
from app.sandbox.together.server import TogetherSandboxServer
from db.engine import read_session
from db.models import Deployment
from tests.deployments.conftest import (
    clocked_provider,
    fine_tune,
    point_ftm_at,
    sandbox_clock,
)

A100 = "1x_nvidia_a100_80gb_sxm"
H100 = "1x_nvidia_h100_80gb_sxm"
# The emulator's rate table (app/sandbox/together/hardware.py), restated in dollars per
# hour: a price read from anywhere but /hardware must fail here.
A100_USD_PER_HOUR = 2.71 * 60 / 100
H100_USD_PER_HOUR = 5.53 * 60 / 100


def ftm(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows() -> list[Deployment]:
    with read_session(database.get_engine()) as session:
        return list(session.exec(select(Deployment).order_by(Deployment.id)))


def endpoints_of(server: TogetherSandboxServer, model: str) -> list:
    return [e for e in server.state.endpoints.values() if e.model == model]


def emulator_state(server: TogetherSandboxServer, endpoint_id: str) -> str:
    endpoint = server.state.endpoints[endpoint_id]
    return endpoint.state(server.clock.now(), server.state._step_s())


def billed_usd(server: TogetherSandboxServer, endpoint_id: str) -> float:
    """The emulator's own bill for the endpoint, through its inspection route."""
    answer = httpx.get(
        f"{server.base_url}/sandbox/endpoint-bills",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    answer.raise_for_status()
    (bill,) = [b for b in answer.json()["data"] if b["id"] == endpoint_id]
    return bill["billed_cents"] / 100


def test_ftm_deploy_prices_the_endpoint_from_hardware_and_never_deploys_twice(
    server, monkeypatch, tmp_path
):
    model = fine_tune(server, tmp_path)
    point_ftm_at(server, monkeypatch)
    args = ["deploy", model, "--provider", "together", "--hardware", A100]
    args += ["--min-replicas", "2", "--max-replicas", "3", "--no-wait"]
    out = ftm(*args)
    assert out.exit_code == 0, out.output
    (row,) = rows()
    assert (row.kind, row.state, row.hardware) == ("dedicated", "pending", A100)
    assert row.usd_per_hour == pytest.approx(2 * A100_USD_PER_HOUR)  # x its 2 replicas
    (endpoint,) = endpoints_of(server, model)
    assert row.remote_id == endpoint.id
    assert (endpoint.hardware, endpoint.min_replicas, endpoint.max_replicas) == (A100, 2, 3)

    server.advance(10.0)  # PENDING, STARTING, STARTED on the emulator's clock
    shown = ftm("deployments", "show", str(row.id), "--json")
    assert json.loads(shown.output)["state"] == "running", shown.output
    assert rows()[0].started_at is not None

    again = ftm(*args)
    assert again.exit_code == 0, again.output
    assert "Already deployed (deployment 1)" in again.output
    assert len(rows()) == 1 and len(endpoints_of(server, model)) == 1

    listed = ftm("deployments", "list")
    assert "running" in listed.output and "$3.25" in listed.output, listed.output
    hardware = ftm("deployments", "hardware", model, "--provider", "together")
    assert A100 in hardware.output and "$1.63" in hardware.output, hardware.output

    wrong = ftm("deploy", model + "-other", "--provider", "together", "--hardware", "1x_abacus")
    assert wrong.exit_code == 1
    assert "has no hardware '1x_abacus'" in wrong.output and A100 in wrong.output


def test_cost_to_date_is_the_emulators_bill_and_a_stop_ends_it(server, recorder, tmp_path):
    model = fine_tune(server, tmp_path)
    engine = database.get_engine()
    clock = sandbox_clock(server)

    def make(name: str):
        return clocked_provider(server, recorder)

    done = deploy(engine, model, provider="together", hardware=H100, make=make, clock=clock)
    row = done.info.row
    assert not done.existed and row.state == "running" and row.started_at is not None
    assert row.usd_per_hour == pytest.approx(H100_USD_PER_HOUR)
    assert emulator_state(server, row.remote_id) == "STARTED"

    server.advance(600.0)
    bill = billed_usd(server, row.remote_id)
    cost = get(engine, row.id, now=clock()).cost_usd
    # Together bills every started minute from STARTED; ftm counts from when its poll
    # saw it started (at most 5 s later): ftm's figure is at most 65 s' worth lower.
    assert bill > 0.5 and 0 <= bill - cost <= H100_USD_PER_HOUR * 65 / 3600

    stop(engine, row.id, make=make, now=clock())
    assert emulator_state(server, row.remote_id) == "STOPPED"
    stopped = get(engine, row.id, now=clock())
    assert stopped.row.state == "stopped" and stopped.row.stop_reason == "user"
    server.advance(3600.0)  # an hour stopped: neither bill grows
    assert billed_usd(server, row.remote_id) == pytest.approx(bill)
    assert get(engine, row.id, now=clock()).cost_usd == pytest.approx(stopped.cost_usd)

    # Started again: a new row (one row is one run), the same endpoint at Together.
    again = deploy(engine, model, provider="together", make=make, clock=clock)
    assert not again.existed and again.info.id != row.id
    assert again.info.row.remote_id == row.remote_id and len(endpoints_of(server, model)) == 1

    server.advance(600.0)
    delete(engine, again.info.id, make=make, now=clock())
    assert row.remote_id not in server.state.endpoints
    # The emulator keeps a deleted endpoint's bill, and it no longer grows.
    final = billed_usd(server, row.remote_id)
    assert final > bill
    server.advance(3600.0)
    assert billed_usd(server, row.remote_id) == pytest.approx(final)
    assert [i.row.state for i in list_deployments(engine, include_ended=True)] == [
        "deleted",
        "stopped",
    ]
    assert list_deployments(engine) == []  # nothing live


def test_an_idle_limit_stops_it_on_the_emulators_clock_and_no_limit_warns(
    server, recorder, tmp_path, monkeypatch
):
    limited, unlimited = fine_tune(server, tmp_path), fine_tune(server, tmp_path)
    engine = database.get_engine()
    clock = sandbox_clock(server)

    def make(name: str):
        return clocked_provider(server, recorder)

    row = deploy(
        engine, limited, provider="together", idle_stop_s=1800, make=make, clock=clock
    ).info.row
    server.advance(1200.0)
    assert enforce_idle_stops(engine, now=clock(), make=make) == []
    log = RequestLog(engine)  # what the gateway writes its requests with
    for _ in range(3):
        log.record({"deployment_id": row.id, "created_at": clock(), "status_code": 200})
    log.close()
    assert get(engine, row.id).row.requests_served == 3
    server.advance(1200.0)  # 2400 s since start, 1200 s since the request
    assert enforce_idle_stops(engine, now=clock(), make=make) == []
    assert emulator_state(server, row.remote_id) == "STARTED"

    server.advance(600.0)  # 1800 s since the request
    (stopped,) = enforce_idle_stops(engine, now=clock(), make=make)
    assert stopped.deployment_id == row.id and stopped.error is None
    assert emulator_state(server, row.remote_id) == "STOPPED"
    ended = get(engine, row.id).row
    assert (ended.state, ended.stop_reason) == ("stopped", "idle")
    assert ended.stopped_at is not None

    other = deploy(engine, unlimited, provider="together", make=make, clock=clock).info.row
    assert idle_warnings(engine, clock(), threshold_s=3600) == []
    server.advance(3700.0)
    (warning,) = idle_warnings(engine, clock(), threshold_s=3600)
    assert f"deployment {other.id} " in warning and "no request for 1 h 01 min" in warning
    assert f"ftm deployments stop {other.id}" in warning and "$3.32/hour" in warning

    # `ftm watch` says it too (on the wall clock, months after the emulator's start).
    point_ftm_at(server, monkeypatch)
    watched = ftm("watch", "--once")
    assert watched.exit_code == 0, watched.output
    said = " ".join(watched.output.split())  # the console wraps at its width
    assert f"deployment {other.id} (" in said and f"ftm deployments stop {other.id}" in said


def test_an_endpoint_an_evaluation_brought_up_is_recorded_with_an_idle_limit(
    server, tmp_path, monkeypatch
):
    """A Together fine-tune answers only from a billed endpoint, made on its first
    question: after its eval the endpoint is a recorded deployment with the eval idle
    limit, never a forgotten one; a second eval adopts nothing new."""
    from app.evaluation.service import EvalRequest, evaluate
    from tests.jobs.conftest import make_dataset
    from tests.together.conftest import SMALL

    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
    monkeypatch.setenv("FTM_DEPLOYMENTS__EVAL_IDLE_STOP", "20m")
    database.reset()
    engine = database.get_engine()
    model = fine_tune(server, tmp_path)
    make_dataset(engine, tmp_path, n_train=8, n_val=2)
    provider = clocked_provider(server)  # its waits move the emulator's clock
    said: list[str] = []
    request = EvalRequest(
        task="toy",
        dataset="toy",
        provider="together",
        base_model=SMALL,
        models=[model],
        zero_shot=False,
        few_shot=0,
        general=False,
        max_tokens=8,
    )
    try:
        evaluate(request, engine=engine, provider_for=lambda _: provider, on_event=said.append)
        evaluate(request, engine=engine, provider_for=lambda _: provider, on_event=said.append)
    finally:
        provider.close()
    with read_session(engine) as session:
        (row,) = session.exec(select(Deployment).where(Deployment.model == model)).all()
    assert (row.provider, row.kind, row.state, row.idle_stop_s) == (
        "together",
        "dedicated",
        "running",
        1200,
    )
    assert row.remote_id and row.usd_per_hour
    (notice,) = [line for line in said if "recorded as deployment" in line]
    assert f"deployment {row.id}" in notice and "20m without a request" in notice
