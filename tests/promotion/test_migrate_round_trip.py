"""`ftm migrate` in both directions on real parts: a model fine-tuned on the OpenAI
emulator (real SDK over HTTP) is promoted, migrated to a local LoRA on the tiny Llama
(real training in a worker), then migrated back to the emulator — each time with the
settings mapping printed (epochs, batch size, learning rate, LoRA settings), the same
eval set, the gates, and the promotion. With the clock near OpenAI's cutoff, the
migration plan (`ftm models plan`) lists the alias before, names the migrated adapter as
its replacement once evaluated, and is empty once that is promoted."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.datasets.store import add_dataset
from app.evaluation.service import EvalRequest, evaluate
from app.jobs.launch import launch_job
from app.promotion import aliases
from app.promotion.migrate import wait_for_job
from app.sandbox.server import SandboxServer
from providers.local import demo_data
from tests.evaluation.sandbox_fixtures import BASE, add_ticket_datasets, train

pytestmark = pytest.mark.slow
NEAR_CUTOFF = "2026-12-20"
CUTOFF = "2027-01-06"  # OpenAI's last day for new fine-tuning jobs


@pytest.fixture
def sandbox(monkeypatch):
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


def _ftm(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "80"})


def _plan() -> dict:
    shown = _ftm("models", "plan", "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


def _said(text: str, output: str) -> bool:
    """``text`` is in ``output``, runs of spaces aside (the mapping aligns its columns)."""
    return " ".join(text.split()) in " ".join(output.split())


def _mapping(output: str) -> list[str]:
    """The printed settings mapping: the lines after ``settings, A -> B:`` up to the
    launch's next report."""
    after = output.split("settings, ", 1)[1].splitlines()[1:]
    return [line for line in after[: next(i for i, x in enumerate(after) if "created" in x)]]


def test_migrate_openai_to_local_and_back_with_the_mapping_printed(
    sandbox, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTM_TODAY", NEAR_CUTOFF)  # the lifecycle service's clock
    engine = database.get_engine()
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(150, 1))
    add_dataset(data, name="labels", val_fraction=0.2, seed=1)
    hosted = train(engine, "labels", "labels")
    runs = evaluate(
        EvalRequest(
            task="labels",
            dataset="labels",
            provider="openai",
            base_model=BASE,
            few_shot=3,
            job_ids=[hosted.id],
            max_tokens=8,
        ),
        engine=engine,
    )
    aliases.promote(
        engine,
        task="labels",
        alias="production",
        run_id=runs[-1].id,
        who="ci",
        why="in production before the migration",
        override=True,
    )
    reported = hosted.hyperparameters
    assert isinstance(reported["n_epochs"], int) and isinstance(reported["batch_size"], int)

    # the plan, near the cutoff: production must move, and nothing can replace it yet
    (entry,) = _plan()["entries"]
    assert (entry["alias"], entry["deadline"], entry["days_left"]) == ("production", CUTOFF, 17)
    assert entry["replacement"] is None and "ftm migrate" in entry["why_none"]

    # 1. OpenAI -> local: epochs (overridden), batch size, the multiplier that cannot carry
    to_local = _ftm(
        "migrate",
        "--task", "labels",
        "--to", "local",
        "--model", str(tiny_model),
        "--epochs", "10",  # the recipe `ftm demo` uses for this task
        "--option", "learning_rate=3e-3",
        "--option", "batch_size=8",  # the emulator's batch of 1 would take 1,200 steps
        "--option", "torch_threads=2",
        "--option", "device=cpu",
        "--timeout", "600",
        "--no-promote",  # promoted below, from the plan
    )  # fmt: skip
    out = to_local.output
    assert to_local.exit_code == 0, out
    mapping = _mapping(out)
    assert mapping and all(len(line) <= 80 for line in mapping), mapping
    assert _said("settings, openai -> local:", out)
    assert _said("epochs 10 -> 10 (set with --epochs)", out)
    assert _said(
        f"batch size             {reported['batch_size']} -> {reported['batch_size']}", out
    )
    lr = f"x{reported['learning_rate_multiplier']:g} (openai scale) -> 0.0002"
    assert lr in out and "unpublished base rate" in out
    assert _said("LoRA rank              - -> 16", out)
    assert _said("option learning_rate   - -> 3e-3  (set with --option)", out)
    assert _said(f"option batch_size      {reported['batch_size']} -> 8  (set with --option)", out)
    assert _said("[5/5] gates:", out) and _said("gates pass; not promoted (--no-promote)", out)

    # the plan now names the new adapter as the replacement, priced, and how to promote it
    (entry,) = _plan()["entries"]
    replacement = entry["replacement"]
    assert replacement["provider"] == "local" and replacement["projected_usd"] > 0
    text = _ftm("models", "plan").output
    # 80 columns, but for a path longer than a line, kept whole on a line of its own
    assert all(len(line) <= 80 or len(line.split()) <= 2 for line in text.splitlines()), text
    do = f"ftm promote --task labels --alias production --run {replacement['run_id']}"
    assert _said(do, text)
    promoted = _ftm(*do.split()[1:])
    assert promoted.exit_code == 0, promoted.output
    assert _plan()["entries"] == []  # nothing left to move
    local_holder = aliases.current(engine, "labels", "production").promotion
    assert local_holder.provider == "local"
    local_job = database_job(engine, local_holder.job_id)
    assert local_job.hyperparameters["epochs"] == 10
    assert local_job.hyperparameters["batch_size"] == 8
    assert local_job.hyperparameters["learning_rate"] == 3e-3
    assert local_job.dataset_id == hosted.dataset_id

    # 2. local -> OpenAI: epochs and batch size carried, the absolute rate and LoRA
    #    settings left to OpenAI, said so; the same eval set; gates; promotion
    back = _ftm(
        "migrate", "--task", "labels", "--to", "openai", "--model", BASE, "--timeout", "300"
    )
    out = back.output
    mapping = _mapping(out)
    assert mapping and all(len(line) <= 80 for line in mapping), mapping
    assert _said("settings, local -> openai:", out)
    assert _said("epochs         10 -> 10  (carried)", out)
    assert _said("batch size     8 -> 8  (carried)", out)
    assert _said("learning rate  0.003 -> auto", out) and "only a multiplier" in out
    assert _said("LoRA rank      16 -> -", out)
    assert _said("[5/5] gates:", out)
    openai_job = newest_job(engine)
    assert openai_job.provider == "openai" and openai_job.status == "succeeded"
    assert openai_job.hyperparameters["n_epochs"] == 10
    assert openai_job.hyperparameters["batch_size"] == 8
    assert openai_job.dataset_id == hosted.dataset_id
    # the emulator's fine-tune on this data does not beat the few-shot baseline: refused
    assert back.exit_code == 1
    assert _said("FAIL baseline: quality 0.333 does not beat the few-shot baseline", out)
    assert _said("not promoted: labels/production still holds", out)
    assert aliases.current(engine, "labels", "production").promotion.id == local_holder.id


def test_migrate_local_to_openai_passes_the_gates_and_is_promoted(sandbox, tiny_model, tmp_path):
    """On the ticket-routing data, where the emulator's fine-tunes beat the baseline: a
    local LoRA holds the alias (the tiny model does not learn this task: promoted by
    override, as the model in production), and its migration to OpenAI is promoted."""
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    evaluate(
        EvalRequest(
            task="routing",
            dataset="tickets",
            provider="openai",
            base_model=BASE,
            few_shot=3,
            max_tokens=8,
        ),
        engine=engine,
    )
    local = launch_job(
        "local",
        "tickets",
        str(tiny_model),
        method="lora",
        options={
            "epochs": 2,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "r": 4,
            "alpha": 8,
            "torch_threads": 2,
            "device": "cpu",
        },
        engine=engine,
    )
    local = wait_for_job(engine, local.id, 300, 0.2, lambda _: None)
    assert local.status == "succeeded", local.error
    (local_run,) = evaluate(
        EvalRequest(
            task="routing",
            dataset="tickets",
            provider="local",
            base_model=str(tiny_model),
            job_ids=[local.id],
            zero_shot=False,
            few_shot=0,
            max_tokens=4,
        ),
        engine=engine,
    )
    aliases.promote(
        engine, task="routing", alias="production", run_id=local_run.id, who="ci",
        why="in production before the migration", override=True,
    )  # fmt: skip

    back = _ftm("migrate", "--task", "routing", "--to", "openai", "--model", BASE)
    out = back.output
    assert back.exit_code == 0, out
    assert _said("settings, local -> openai:", out)
    assert _said("epochs 2 -> 2 (carried)", out) and _said("batch size 8 -> 8 (carried)", out)
    assert _said("learning rate 0.001 -> auto", out)
    assert _said("LoRA rank 4 -> - (OpenAI chooses its own adapter)", out)
    assert _said("LoRA alpha 8 -> -", out)
    assert _said("pass baseline:", out) and _said("pass general:", out)
    openai_job = newest_job(engine)
    assert openai_job.provider == "openai" and openai_job.dataset_id == local.dataset_id
    assert openai_job.hyperparameters["n_epochs"] == 2
    assert openai_job.hyperparameters["batch_size"] == 8
    holder = aliases.current(engine, "routing", "production").promotion
    assert holder.provider == "openai" and holder.model == openai_job.fine_tuned_model
    assert "migrated from" in holder.why


def database_job(engine, job_id):
    from db.engine import read_session
    from db.models import Job

    with read_session(engine) as session:
        return session.get(Job, job_id)


def newest_job(engine):
    from sqlmodel import select

    from db.engine import read_session
    from db.models import Job

    with read_session(engine) as session:
        return session.exec(select(Job).order_by(Job.id.desc())).first()
