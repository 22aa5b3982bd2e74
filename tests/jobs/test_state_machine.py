"""The normalized job state machine and `db.repository.set_status`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.database import get_engine
from db import repository
from db.engine import read_session, write_session
from db.models import Job, JobEvent
from providers.types import TERMINAL_STATUSES, InvalidTransition, JobStatus

S = JobStatus


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_states_stay_terminal(terminal):
    for other in JobStatus:
        assert terminal.can_move_to(other) == (other == terminal)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.UPLOADING),
        (S.UPLOADING, S.VALIDATING),
        (S.VALIDATING, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.PAUSED),
        (S.PAUSED, S.QUEUED),
        (S.PAUSED, S.RUNNING),
        (S.PENDING, S.RUNNING),
        (S.VALIDATING, S.FAILED),
        (S.QUEUED, S.CANCELLED),
    ],
)
def test_allowed_moves(old, new):
    assert old.can_move_to(new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.RUNNING, S.QUEUED),
        (S.RUNNING, S.VALIDATING),
        (S.QUEUED, S.PENDING),
        (S.UPLOADING, S.PENDING),
        (S.RUNNING, S.UPLOADING),
        (S.UPLOADING, S.PAUSED),
    ],
)
def test_backward_moves_are_refused(old, new):
    assert not old.can_move_to(new)


def _job(session, status="pending") -> Job:
    job = Job(name="t", provider="openai", base_model="m", method="supervised", status=status)
    session.add(job)
    session.flush()
    return job


def test_set_status_moves_and_stamps_times():
    engine = get_engine()
    with write_session(engine) as session:
        job = _job(session)
        assert repository.set_status(session, job, S.RUNNING)
        assert job.started_at is not None and job.finished_at is None
        assert not repository.set_status(session, job, S.RUNNING)  # staying put: no change
        assert repository.set_status(session, job, "succeeded")
        assert job.finished_at is not None
        job_id = job.id
    with read_session(engine) as session:
        assert repository.get_job(session, job_id).status == "succeeded"


def test_set_status_refuses_leaving_a_terminal_state():
    engine = get_engine()
    with write_session(engine) as session:
        job = _job(session, "cancelled")
        with pytest.raises(InvalidTransition, match="cannot move from cancelled to running"):
            repository.set_status(session, job, S.RUNNING)
        # a poller that read a stale status uses strict=False: ignored, not raised
        assert repository.set_status(session, job, S.RUNNING, strict=False) is False
        assert job.status == "cancelled"


def test_set_status_rejects_unknown_status_names():
    with write_session(get_engine()) as session:
        job = _job(session)
        with pytest.raises(ValueError):
            repository.set_status(session, job, "paused_forever")


def test_only_a_failed_or_cancelled_job_can_be_resumed_from_its_checkpoint():
    assert [s for s in JobStatus if s.can_resume_from] == [S.FAILED, S.CANCELLED]
    assert not S.FAILED.can_move_to(S.QUEUED)  # not an ordinary move: set_status refuses it
    assert not S.CANCELLED.can_move_to(S.QUEUED)


def test_reopen_for_resume_moves_failed_to_queued_and_clears_the_end():
    engine = get_engine()
    with write_session(engine) as session:
        job = _job(session)
        repository.set_status(session, job, S.RUNNING)
        repository.set_status(session, job, S.FAILED)
        job.error = {"code": "worker_died", "message": "killed", "param": None}
        job.eta_s = 12.0
        repository.reopen_for_resume(session, job, "resuming from checkpoint-10", key="r1")
        job_id = job.id
    with read_session(engine) as session:
        job = repository.get_job(session, job_id)
        assert job.status == "queued"
        assert job.finished_at is None and job.error is None and job.eta_s is None
        assert job.started_at is not None  # the first start stays on record
        messages = [
            e.message for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id))
        ]
        assert messages == ["resuming from checkpoint-10"]


@pytest.mark.parametrize("status", ["succeeded", "running", "queued", "paused"])
def test_reopen_for_resume_refuses_anything_but_failed_or_cancelled(status):
    with write_session(get_engine()) as session:
        job = _job(session, status)
        with pytest.raises(InvalidTransition, match="only a failed or cancelled job"):
            repository.reopen_for_resume(session, job, "resume")
        assert job.status == status
