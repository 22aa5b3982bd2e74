"""Local training on a Ray cluster (option ``cluster``), end to end on a real Ray head
started on this machine (CPU only, one per module: it takes seconds to start).

The head runs without this process's PYTHONPATH and FTM_* variables, so ftm's code and the
database URL reach the worker only through the job (runtime_env py_modules; the one-shot
handover file). One job goes through the whole life: launched through ftm's launch, a
cancel mid-run (checkpoint), a resume, its worker killed (lost: detected from Ray's job
status), a resume from the last checkpoint, success, with progress, events and
checkpoints in the database all along, and the database URL in nothing Ray keeps.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from app.cli.main import cli
from app.database import get_engine
from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.settings import PollerSettings, get_settings
from db.engine import masked_url, read_session
from db.models import Checkpoint, JobEvent, MetricPoint
from providers.errors import SpecRejected
from providers.local import LocalProvider, demo_data
from providers.local.jobdir import JobDir
from providers.local.secret_handoff import secret_path
from providers.types import JobSpec
from tests.jobs.conftest import job_row, poll_until
from tests.ray_head import RayHead, wait_for
from tests.tiny import add_labelling_dataset


@pytest.fixture(scope="module")
def ray_head():
    with RayHead(num_cpus=2) as head:
        yield head
    assert head.processes() == []  # no stray raylet, worker or job left behind


def ray_client(head: RayHead):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head.address)


def test_a_job_no_node_can_hold_is_refused_before_submitting(ray_head, ftm_home, tmp_path):
    provider = LocalProvider(jobs_dir=tmp_path / "jobs", database_url=None)
    train = demo_data.write_jsonl(tmp_path / "train.jsonl", demo_data.labelling_examples(8))
    # meta-llama/Llama-3.1-70B's shape: tens of GB to train even LoRA on a CPU.
    big = tmp_path / "llama-70b"
    big.mkdir()
    (big / "config.json").write_text(
        json.dumps(
            dict(
                hidden_size=8192,
                num_hidden_layers=80,
                num_attention_heads=64,
                num_key_value_heads=8,
                intermediate_size=28672,
                vocab_size=128256,
                tie_word_embeddings=False,
                model_type="llama",
            )
        )
    )

    def spec(uid: str, **options) -> JobSpec:
        return JobSpec(
            name="t",
            base_model=str(big),
            train_path=str(train),
            method="lora",
            ftm_job_uid=uid,
            options={"cluster": ray_head.address, **options},
        )

    with pytest.raises(SpecRejected) as exc:
        provider.create(spec("gpu", device="auto"))
    assert exc.value.code == "insufficient_resources"
    assert "needs 1 CPU, 1 GPU" in exc.value.message
    assert "the largest node offers 2 CPU, 0 GPU" in exc.value.message

    with pytest.raises(SpecRejected) as exc:
        provider.create(spec("ram", device="cpu"))
    assert exc.value.code == "insufficient_resources"
    assert "GB memory; the largest node offers" in exc.value.message
    assert "skip_memory_check=true" in exc.value.message
    # Refused before anything was written or submitted.
    assert not (tmp_path / "jobs" / "ram" / "config.json").exists()
    assert ray_client(ray_head).list_jobs() == []


@pytest.mark.slow
@pytest.mark.timeout(600)  # three workers in turn (~2 min), plus the tiny model if first
def test_a_job_on_the_ray_head_cancels_resumes_survives_its_killed_worker_and_finishes(
    ray_head,
    tiny_model,  # noqa: F811
    tmp_path,
):
    engine = get_engine()
    db_url = get_settings().resolved_database_url
    data_dir = tmp_path / "labelling"
    add_labelling_dataset(engine, data_dir, n_train=32, n_validation=8)
    job = launch_job(
        "local",
        "labels",
        str(tiny_model),
        method="lora",
        hyperparameters={"n_epochs": 10},
        options={
            "cluster": ray_head.address,
            "device": "cpu",
            "torch_threads": 1,
            "save_steps": 4,
            "logging_steps": 1,
            "early_stopping_patience": 0,
        },
    )
    workdir = JobDir(get_settings().file_store.local_path(job.remote_id))
    ray = workdir.read_config()["ray"]
    assert ray["submission_id"] == f"ftm-{job.uid}-1"
    assert ray["resources"]["num_gpus"] == 0 and ray["resources"]["memory_bytes"] > 0
    poller = Poller(
        engine, settings=PollerSettings(concurrency=2, requests_per_second=100, stall_after_s=3600)
    )
    runner = CliRunner()

    def ray_state(attempt: int) -> str:
        return ray_client(ray_head).get_job_status(f"ftm-{job.uid}-{attempt}").value

    def status() -> dict:
        return workdir.read_status() or {}

    def run_to(state: str, timeout: float = 240) -> None:
        poll_until(
            poller,
            lambda: job_row(engine, job.id).status in ("succeeded", "failed", "cancelled"),
            timeout=timeout,
            pause=0.2,
        )
        row = job_row(engine, job.id)
        assert row.status == state, (row.error, workdir.log_tail(30))

    try:
        # 1. cancel mid-run: the worker stops at a step end with a checkpoint there.
        wait_for(lambda: (status().get("step") or 0) >= 2, timeout=180)
        assert not secret_path(workdir).exists()  # the worker took it as it started
        result = runner.invoke(cli, ["jobs", "cancel", str(job.id)])
        assert result.exit_code == 0, result.output
        run_to("cancelled")
        stopped_at = status()["actual"]["stopped_at_step"]
        assert 2 <= stopped_at < 40
        assert workdir.last_checkpoint().name == f"checkpoint-{stopped_at}"
        # the worker exited 0 after its final status: Ray's job ends SUCCEEDED (in a moment)
        wait_for(lambda: ray_state(1) != "RUNNING", timeout=30)
        assert ray_state(1) == "SUCCEEDED"

        # 2. resume, then kill the worker (the Ray job's driver) after its next checkpoint.
        result = runner.invoke(cli, ["jobs", "resume", str(job.id)])
        assert result.exit_code == 0, result.output
        assert workdir.read_config()["ray"]["submission_id"] == f"ftm-{job.uid}-2"
        wait_for(
            lambda: int(workdir.last_checkpoint().name.rpartition("-")[2]) > stopped_at,
            timeout=180,
        )
        os.kill(status()["pid"], signal.SIGKILL)  # no chance to write a final status
        run_to("failed", timeout=60)
        error = job_row(engine, job.id).error
        assert error["code"] == "worker_died"
        assert f"Ray job ftm-{job.uid}-2 FAILED" in error["message"]
        resumed_from = workdir.last_checkpoint().name

        # 3. resume from the last checkpoint: it finishes.
        result = runner.invoke(cli, ["jobs", "resume", str(job.id)])
        assert result.exit_code == 0, result.output
        run_to("succeeded")
    finally:
        poller.close()

    row = job_row(engine, job.id)
    assert row.step == row.total_steps == 40
    assert (workdir.adapter / "adapter_model.safetensors").is_file()
    with read_session(engine) as session:
        events = session.scalars(
            select(JobEvent.provider_event_id).where(JobEvent.job_id == row.id)
        ).all()
        points = session.scalar(
            select(func.count()).select_from(MetricPoint).where(MetricPoint.job_id == row.id)
        )
        checkpoints = session.scalar(
            select(func.count()).select_from(Checkpoint).where(Checkpoint.job_id == row.id)
        )
    assert f"local:3:resume-{resumed_from}" in events
    assert points >= 30 and checkpoints >= 3

    # The database URL is in nothing Ray keeps, nor in the job directory.
    client = ray_client(ray_head)
    for attempt in (1, 2, 3):
        sub_id = f"ftm-{job.uid}-{attempt}"
        assert db_url not in str(client.get_job_info(sub_id))
        assert db_url not in client.get_job_logs(sub_id)
    assert not secret_path(workdir).exists()
    masked = masked_url(db_url)  # config.json holds this by design (no password in it)
    for where in (ray_head.temp_dir, workdir.path):
        for path in where.rglob("*"):
            if path.is_file() and path.stat().st_size < 20_000_000:
                data = path.read_bytes()
                if path == workdir.path / "config.json":
                    data = data.replace(masked.encode(), b"")
                assert db_url.encode() not in data, path
