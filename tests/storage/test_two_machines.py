"""Issue 15's proof: machine A (its own FTM_HOME) adds a dataset, trains a tiny local job
and evaluates and promotes it; machine B, with another FTM_HOME, the same database and the
same shared root, lists, estimates, evaluates and exports every dataset and model. A's
home is deleted before B starts, and nothing in the database names it. With
``--db postgresql`` the database is a real PostgreSQL server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.jobs.launch import launch_job
from app.jobs.poller import Poller
from app.settings import PollerSettings
from providers.local import demo_data, inference_cache
from tests.jobs.conftest import job_row, poll_until
from tests.storage.test_shared_root import texts_in_database
from tests.tiny import tiny_model  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow


def _ftm(*args: str):
    out = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    return out


def _machine(monkeypatch, home: Path) -> None:
    monkeypatch.setenv("FTM_HOME", str(home))
    database.reset()
    inference_cache.clear()  # models loaded "on the other machine" are not in memory here


def _eval(job_id: int, max_tokens: int) -> dict:
    runs = json.loads(
        _ftm(
            "eval",
            "--task",
            "labels",
            "--job",
            str(job_id),
            "--no-zero-shot",
            "--few-shot",
            "0",
            "--no-general",
            "--max-tokens",
            str(max_tokens),
            "--json",
        ).stdout
    )
    (run,) = runs
    return run


def test_a_teammate_with_another_home_uses_every_dataset_and_model(
    tiny_model,  # noqa: F811
    tmp_path,
    monkeypatch,
    database_url,
):
    shared = tmp_path / "team-root"
    home_a, home_b = tmp_path / "machine-a", tmp_path / "machine-b"
    monkeypatch.setenv("FTM_DATABASE_URL", database_url)
    monkeypatch.setenv("FTM_STORAGE__ROOT", str(shared))

    # -- machine A: add, train (a handful of steps), evaluate, promote
    _machine(monkeypatch, home_a)
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(40, 1))
    _ftm("data", "add", str(data), "--name", "labels", "--val-fraction", "0.2", "--seed", "1")
    engine = database.get_engine()
    job = launch_job(
        "local",
        "labels",
        str(tiny_model),
        method="lora",
        hyperparameters={"n_epochs": 1, "batch_size": 8},
        options={"torch_threads": 1, "device": "cpu", "save_steps": 2},
    )
    poller = Poller(engine, settings=PollerSettings(requests_per_second=100, stall_after_s=3600))
    poll_until(
        poller,
        lambda: job_row(engine, job.id).status in ("succeeded", "failed", "cancelled"),
        timeout=240,
        pause=0.5,
    )
    poller.close()
    row = job_row(engine, job.id)
    assert row.status == "succeeded", row.error
    assert row.fine_tuned_model == f"jobs/{row.uid}/adapter"  # a reference, not a path
    run_a = _eval(job.id, 4)
    assert run_a["status"] == "succeeded", run_a
    assert run_a["model"] == row.fine_tuned_model
    _ftm(
        "promote", "--task", "labels", "--run", str(run_a["run_id"]), "--override", "--why", "proof"
    )
    # Neither A's home nor the shared root's mount point (a teammate's may differ).
    named = [
        row for row in texts_in_database().splitlines() if str(home_a) in row or str(shared) in row
    ]
    assert named == []
    database.reset()
    shutil.rmtree(home_a)

    # -- machine B: another home, the same database and shared root
    _machine(monkeypatch, home_b)
    listed = json.loads(_ftm("data", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["labels"]
    _ftm("data", "show", "labels")
    _ftm("estimate", "labels")
    # Other generation settings than A's: not answered from the shared cache, so B loads
    # the adapter itself from the shared root.
    run_b = _eval(job.id, 3)
    assert run_b["status"] == "succeeded" and run_b["summary"]["calls"] > 0, run_b
    exported = json.loads(_ftm("models", "export", "--task", "labels").stdout)
    adapter = Path(exported["path"])
    assert adapter == shared.resolve() / "jobs" / row.uid / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    merged = tmp_path / "merged"
    _ftm("local", "merge", str(job.id), "--out", str(merged))
    assert (merged / "config.json").is_file()
