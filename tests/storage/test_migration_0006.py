"""Migration 0006 on a database in use: absolute paths under ftm's data directory become
storage-root references; after the data directory moves, everything is still found.
Runs on PostgreSQL too (``--db postgresql``)."""

from __future__ import annotations

import hashlib
import json
import shutil

import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import select

from app import database
from app.cli.main import cli
from app.datasets.store import load_examples
from app.settings import get_settings
from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import Artifact, Checkpoint, Dataset, EvalRun, Job, Promotion

BEFORE = "0005_traffic_policies_shadow"
HASH = hashlib.sha256(b"tickets").hexdigest()
UID = "fedcba9876543210fedcba9876543210"


def _at_0005(url: str) -> sa.Engine:
    engine = make_engine(url)
    if migrate.current_revision(engine) is None:
        migrate.upgrade(engine, BEFORE)  # a new SQLite file
    else:
        migrate.downgrade(engine, BEFORE)  # the PostgreSQL fixture's database is at head
    return engine


def test_paths_under_the_home_become_references_and_survive_moving_the_home(
    ftm_home, database_url, tmp_path, monkeypatch
):
    home = ftm_home
    data = home / "datasets" / HASH
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
    )
    (data / "validation.jsonl").write_text("")
    job_dir = home / "jobs" / UID
    (job_dir / "adapter").mkdir(parents=True)
    (job_dir / "adapter" / "adapter_config.json").write_text("{}")
    own_model = tmp_path / "my-models" / "llama"  # the user's own directory: kept

    engine = _at_0005(database_url)
    with write_session(engine) as s:
        ds = Dataset(
            name="tickets",
            content_hash=HASH,
            format="chat",
            source_path=str(tmp_path / "t.jsonl"),
            n_examples=1,
            n_train=1,
            n_validation=0,
            val_fraction=0.0,
            split_seed=0,
            verdict="ok",
            data_dir=str(data),
        )
        s.add(ds)
        s.flush()
        job = Job(
            uid=UID,
            name="j",
            provider="local",
            base_model=str(own_model),
            method="lora",
            dataset_id=ds.id,
            status="succeeded",
            remote_id=str(job_dir),
            job_dir=str(job_dir),
            fine_tuned_model=str(job_dir / "adapter"),
        )
        hosted = Job(
            name="h",
            provider="openai",
            base_model="gpt-4o-mini",
            method="supervised",
            remote_id="ftjob-1",
            fine_tuned_model="ft:gpt-4o-mini:org::x",
        )
        s.add_all([job, hosted])
        s.flush()
        s.add(
            Checkpoint(
                job_id=job.id, step=2, model_ref=str(job_dir / "checkpoints" / "checkpoint-2")
            )
        )
        s.add(Artifact(job_id=job.id, kind="adapter", uri=str(job_dir / "adapter")))
        s.add(Artifact(job_id=job.id, kind="merged", uri=str(own_model)))
        s.add(
            EvalRun(
                task="t",
                candidate_kind="fine_tuned",
                provider="local",
                model=str(job_dir / "adapter"),
                job_id=job.id,
            )
        )
        s.add(
            Promotion(
                task="t",
                alias="production",
                action="promote",
                provider="local",
                model=str(job_dir / "adapter"),
                model_kind="adapter",
                who="me",
            )
        )
        job_id = job.id
    engine.dispose()

    database.reset()
    engine = database.get_engine()  # the app's own open: upgrades with its settings
    assert migrate.current_revision(engine) == migrate.head_revision()
    adapter_ref = f"jobs/{UID}/adapter"
    with read_session(engine) as s:
        ds = s.exec(select(Dataset)).one()
        job = s.get(Job, job_id)
        assert ds.data_dir == f"datasets/{HASH}"
        assert ds.source_path == str(tmp_path / "t.jsonl")  # outside the home: kept
        assert (job.remote_id, job.job_dir, job.fine_tuned_model) == (
            f"jobs/{UID}",
            f"jobs/{UID}",
            adapter_ref,
        )
        assert job.base_model == str(own_model)
        assert s.exec(select(Checkpoint)).one().model_ref == f"jobs/{UID}/checkpoints/checkpoint-2"
        assert {a.uri for a in s.exec(select(Artifact))} == {adapter_ref, str(own_model)}
        assert s.exec(select(EvalRun)).one().model == adapter_ref
        assert s.exec(select(Promotion)).one().model == adapter_ref
        hosted = s.exec(select(Job).where(Job.provider == "openai")).one()
        assert (hosted.remote_id, hosted.fine_tuned_model) == ("ftjob-1", "ft:gpt-4o-mini:org::x")

    # The data directory moves (the SQLite database with it; PostgreSQL stays put).
    moved = tmp_path / "moved-home"
    database.reset()
    shutil.move(home, moved)
    monkeypatch.setenv("FTM_HOME", str(moved))
    database.reset()
    with read_session(database.get_engine()) as s:
        ds = s.exec(select(Dataset)).one()
        job = s.get(Job, job_id)
    assert load_examples(ds, "train")[0]["messages"][0]["content"] == "hi"
    store = get_settings().file_store
    assert (store.local_path(job.fine_tuned_model) / "adapter_config.json").is_file()
    listed = CliRunner().invoke(cli, ["data", "list", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["data_dir"] == ds.data_dir


def test_downgrade_turns_references_back_into_paths_under_the_root(ftm_home, database_url):
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    with write_session(engine) as s:
        s.add(
            Dataset(
                name="d",
                content_hash=HASH,
                format="chat",
                source_path="/x.jsonl",
                n_examples=1,
                n_train=1,
                n_validation=0,
                val_fraction=0.0,
                split_seed=0,
                verdict="ok",
                data_dir=f"datasets/{HASH}",
            )
        )
    migrate.downgrade(engine, BEFORE, storage=get_settings().file_store)
    with read_session(engine) as s:
        assert s.exec(select(Dataset)).one().data_dir == str(ftm_home.resolve() / "datasets" / HASH)
    migrate.upgrade(engine, storage=get_settings().file_store, data_dirs=[ftm_home])
    with read_session(engine) as s:
        assert s.exec(select(Dataset)).one().data_dir == f"datasets/{HASH}"
    engine.dispose()
