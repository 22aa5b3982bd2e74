"""API JSON -> ftm's neutral types, tolerant of what the SDK does not know."""

from __future__ import annotations

import pytest

from providers.openai import convert
from providers.types import JobStatus

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_statuses_map_and_unknown_ones_never_end_a_job():
    assert convert.normalize_status("validating_files") == JobStatus.VALIDATING
    assert convert.normalize_status("paused") == JobStatus.PAUSED
    assert convert.normalize_status("pausing") == JobStatus.PAUSED
    unknown = convert.normalize_status("cooling_down")
    assert not unknown.is_terminal
    assert not JobStatus.RUNNING.can_move_to(unknown)  # a running job is not dragged back


def test_remote_job_reads_method_hyperparameters_and_ignores_an_empty_error():
    raw = {
        "id": "ftjob-1",
        "status": "running",
        "model": "gpt-4o-mini-2024-07-18",
        "error": {},
        "created_at": 1_700_000_000,
        "estimated_finish": 1_700_000_600,
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": 2}}},
        "hyperparameters": {"n_epochs": "auto"},
        "metadata": {"ftm_job_id": "abc"},
    }
    job = convert.remote_job(raw)
    assert job.error is None and job.hyperparameters == {"beta": 0.1, "n_epochs": 2}
    assert job.metadata == {"ftm_job_id": "abc"} and job.raw_status == "running"
    failed = convert.remote_job(
        {
            **raw,
            "status": "failed",
            "error": {
                "code": "invalid_training_file",
                "message": "bad line 3",
                "param": "training_file",
            },
        }
    )
    assert failed.status == JobStatus.FAILED
    assert failed.error.code == "invalid_training_file" and failed.error.param == "training_file"


def test_result_csv_with_empty_validation_cells():
    text = (
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        "1,2.5,0.1,,\n2,2.0,0.2,2.2,0.15\n"
    )
    points = convert.metrics_from_result_csv(text)
    assert [(p.step, p.train_loss, p.eval_loss) for p in points] == [(1, 2.5, None), (2, 2.0, 2.2)]
