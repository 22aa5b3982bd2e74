"""Training health on a real run: the tiny model trained locally with a learning rate far
too high; the refresh that the poller makes records an instability finding from the
metrics the worker wrote."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.database import get_engine
from app.jobs.tracking import apply_refresh
from app.settings import get_settings
from db.engine import read_session, write_session
from db.models import Job, JobEvent, MetricPoint
from providers.local import LocalProvider
from providers.types import JobSpec, JobStatus
from tests.local.conftest import new_job_row
from tests.tiny import labelling_files, tiny_model  # noqa: F401  (session fixture)


@pytest.mark.slow
def test_a_learning_rate_far_too_high_raises_instability(ftm_home, tiny_model, tmp_path):  # noqa: F811
    from providers.local.worker import StopRequest, run

    settings = get_settings()
    engine = get_engine()
    provider = LocalProvider(
        jobs_dir=settings.jobs_dir, database_url=settings.resolved_database_url
    )
    train, _ = labelling_files(tmp_path, n_train=16, n_validation=4)
    uid = new_job_row("hot", str(tiny_model), "full")
    spec = JobSpec(
        name="hot",
        base_model=str(tiny_model),
        train_path=str(train),
        validation_path=None,
        method="full",
        ftm_job_uid=uid,
        options={
            "torch_threads": 1,
            "device": "cpu",
            "epochs": 6,
            "batch_size": 4,
            "learning_rate": 3.0,  # ~1000x what full fine-tuning of this model wants
            "logging_steps": 1,
            "warmup_ratio": 0.0,
            "scheduler": "constant",
        },
    )
    job_dir, _ = provider.write_job(provider.prepare(spec))
    assert run(job_dir, StopRequest()) in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    with write_session(engine) as s:
        row = s.scalars(select(Job).where(Job.uid == uid)).one()
        applied = apply_refresh(s, row, provider.refresh(str(job_dir.path)))
        job_id = row.id
    with read_session(engine) as s:
        points = s.scalars(
            select(MetricPoint).where(MetricPoint.job_id == job_id).order_by(MetricPoint.step)
        ).all()
        losses = [(p.step, p.train_loss) for p in points if p.train_loss is not None]
        found = [
            e.data
            for e in s.scalars(select(JobEvent).where(JobEvent.job_id == job_id))
            if e.type == "health"
        ]
    first = min((f for f in found if f["kind"] == "instability"), key=lambda f: f["step"])
    # found at the first step whose loss is over 4x the lowest before it (step 2 here)
    over = next(
        s for i, (s, v) in enumerate(losses[1:], 1) if v > 4 * min(v0 for _, v0 in losses[:i])
    )
    assert first["step"] == over and first["step"] <= 6, (first, losses[:8])
    assert applied.health and any("Instability" in m for m in applied.health)
