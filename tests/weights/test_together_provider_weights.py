"""The REAL Together provider's weights on this machine: a job launched with `ftm launch
--provider together` on the emulator's tiny model, its adapter fetched by `ftm jobs
download` (`TogetherProvider.download_weights`, the SDK over real HTTP), then evaluated
with real local generation by `ftm eval --local-weights`."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.datasets.store import add_dataset
from app.jobs.actions import refresh_job
from db.engine import read_session
from db.models import Artifact, Job
from providers.local import demo_data
from providers.together import TogetherProvider


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_launch_download_and_evaluate_a_together_adapter(server, monkeypatch, tmp_path, ftm_home):
    assert TogetherProvider.capabilities.downloadable_weights == ("adapter", "merged")
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
    monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
    database.reset()
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(40, 1))
    add_dataset(data, name="labels", val_fraction=0.2, seed=1)
    launched = _cli(
        "launch", "--provider", "together", "--dataset", "labels",
        "--model", "ftm-sandbox/tiny-llama", "--epochs", "1", "--batch-size", "8",
        "--option", "lora_r=4", "-y",
    )  # fmt: skip
    assert launched.exit_code == 0, launched.output
    with read_session(database.get_engine()) as session:
        (job,) = session.exec(select(Job)).all()
    server.advance(100_000)
    refresh_job(job.id, engine=database.get_engine())

    base_dir = str(server.state.weights.base_dir)
    fetched = _cli("jobs", "download", str(job.id), "--base-model", base_dir)
    assert fetched.exit_code == 0, fetched.output
    with read_session(database.get_engine()) as session:
        assert session.get(Job, job.id).status == "succeeded"
        (adapter,) = session.exec(select(Artifact).where(Artifact.job_id == job.id)).all()
    assert adapter.kind == "adapter" and adapter.meta["format"] == "peft"
    assert adapter.meta["rank"] == 4  # the rank ftm asked Together for
    assert adapter.meta["provider_base_model"] == "ftm-sandbox/tiny-llama"
    assert adapter.uri == f"jobs/{job.uid}/adapter"  # under the storage root (the home)

    evaluated = _cli(
        "eval", "--task", "labels", "--job", str(job.id), "--local-weights",
        "--few-shot", "0", "--no-general", "--limit", "4", "--max-tokens", "4", "--json",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    runs = json.loads(evaluated.output[evaluated.output.index("[") :])
    assert [r["kind"] for r in runs] == ["zero_shot", "fine_tuned"]
    assert all(r["status"] == "succeeded" for r in runs), runs
    assert runs[1]["model"] == adapter.uri and runs[0]["model"] == base_dir

    merged = _cli("jobs", "download", str(job.id), "--kind", "merged")
    assert merged.exit_code == 0, merged.output
    assert (ftm_home / "jobs" / job.uid / "merged" / "config.json").is_file()
