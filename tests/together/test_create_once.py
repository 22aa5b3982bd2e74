"""Never two billed jobs for one launch: Together has no idempotency key, so after a lost
answer the job is found by the uid tag in its suffix before anything is sent again."""

from __future__ import annotations

import time

import pytest

from app.sandbox.faults import FaultPlan
from providers.errors import ProviderError
from providers.together.convert import uid_tag
from tests.together.conftest import provider_for, spec_for

UID = "feedfacecafebeef0123456789abcdef"


def _created(server) -> list:
    return [j for j in server.state.jobs.values() if j.suffix and uid_tag(UID) in j.suffix]


def test_a_lost_answer_is_found_by_lookup_not_created_again(provider, server, train_file):
    spec = provider.prepare(spec_for(train_file, uid=UID, suffix="mine"))
    server.faults = FaultPlan().next(1, "drop_after", "jobs.create")
    job = provider.create(spec)
    assert len(server.state.jobs) == 1 and job.remote_id in server.state.jobs
    assert server.faults.total_injected("drop_after") == 1
    assert provider.find_by_uid(UID).remote_id == job.remote_id
    assert server.state.jobs[job.remote_id].model_output_name.count(uid_tag(UID)) == 1


def test_server_errors_after_the_job_was_made_create_one_job(provider, server, train_file):
    spec = provider.prepare(spec_for(train_file, uid=UID))
    # 500 and 503 answered: the emulator made nothing; a lookup first, then one new create
    server.faults = (
        FaultPlan().next(1, "server_error", "jobs.create").next(1, "unavailable", "jobs.create")
    )
    job = provider.create(spec)
    assert [j.id for j in _created(server)] == [job.remote_id]
    assert server.faults.total_injected() == 2


def test_a_server_error_after_the_job_was_made_is_found_not_created_again(
    provider, server, train_file
):
    spec = provider.prepare(spec_for(train_file, uid=UID))
    server.faults = FaultPlan().next(1, "error_after", "jobs.create")  # made, then a 500
    job = provider.create(spec)
    assert [j.id for j in _created(server)] == [job.remote_id]
    assert server.faults.total_injected("error_after") == 1


def test_a_create_still_in_flight_is_never_sent_again(server, train_file):
    slow = provider_for(server, sleep=time.sleep, timeout_s=0.5, create_attempts=4)
    spec = slow.prepare(spec_for(train_file, uid=UID))
    server.faults = FaultPlan().next(1, "slow", "jobs.create", delay_s=1.5)
    job = slow.create(spec)  # timed out, then only lookups until the job shows up
    assert [j.id for j in _created(server)] == [job.remote_id]
    slow.close()


def test_a_failed_price_check_inside_the_sdk_create_is_not_a_lost_create(
    provider, server, train_file
):
    spec = provider.prepare(spec_for(train_file, uid=UID))
    # the SDK asks estimate-price before it POSTs the job: losing that answer sent nothing
    server.faults = FaultPlan().next(2, "drop_after", "jobs.estimate_price")
    job = provider.create(spec)
    assert [j.id for j in _created(server)] == [job.remote_id]
    assert server.faults.total_injected() == 2


def test_a_refusal_creates_nothing_and_says_what(provider, server, train_file):
    spec = provider.prepare(spec_for(train_file, uid=UID, options={"lora_r": 999}))
    with pytest.raises(ProviderError, match="lora_r must be between 1 and 64") as caught:
        provider.create(spec)  # validate_spec would have said so; the service does too
    assert not caught.value.retryable and not server.state.jobs


def test_unreachable_says_nothing_was_created(server, train_file):
    made = provider_for(server)
    spec = made.prepare(spec_for(train_file, uid=UID))
    made.close()
    server.stop()
    with pytest.raises(ProviderError, match="No job was created") as caught:
        made.create(spec)
    assert caught.value.code == "not_sent"


def test_limits_unreadable_at_create_time_sent_nothing(server, train_file):
    fresh = provider_for(server, create_attempts=3)  # e.g. the poller's resend: no limits yet
    spec = fresh.prepare(spec_for(train_file, uid=UID))
    server.faults = FaultPlan().next(30, "drop_after", "jobs.limits")
    with pytest.raises(ProviderError, match="No job was created") as caught:
        fresh.create(spec)
    assert caught.value.code == "not_sent" and not server.state.jobs
    server.faults = FaultPlan()
    assert fresh.create(spec).remote_id in server.state.jobs
    fresh.close()
