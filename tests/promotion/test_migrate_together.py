"""`ftm migrate` with Together AI on either side, on real parts: the OpenAI emulator and
the Together emulator (real SDKs over loopback HTTP) and the tiny local Llama (real
LoRA training in a worker). One alias, ticket routing, moves OpenAI -> Together (found
by `ftm models plan` as the cheapest gate-passing replacement near OpenAI's cutoff, then
promoted), Together -> local (refused by the baseline gate: the tiny model does not
learn the task, and the numbers show the refusal is right), and local -> Together
(promoted). Each time: the settings mapping printed, the same eval set, the gates. The
plan prices the Together candidate when Together declares prices (`pricing()`): per
token at its base's fine-tuned rates plus the dedicated endpoint's hours.

The Together emulator runs with ``serve_fine_tunes``: as if each fine-tune had its
dedicated endpoint up, it answers from its training examples like the OpenAI
emulator's fine-tunes, so the gates judge something real.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.evaluation.service import EvalRequest, evaluate
from app.promotion import aliases
from app.sandbox.server import SandboxServer
from app.sandbox.together.server import TogetherSandboxServer
from providers.together import TogetherProvider
from tests.evaluation.sandbox_fixtures import BASE, add_ticket_datasets, train
from tests.promotion.test_migrate_round_trip import _mapping, _said, database_job, newest_job

pytestmark = pytest.mark.slow
TOGETHER_BASE = "meta-llama/Llama-3.2-1B-Instruct"
NEAR_CUTOFF = "2026-12-20"  # 17 days before OpenAI's last day for new fine-tuning jobs


@pytest.fixture
def emulators(monkeypatch, tmp_path):
    with (
        SandboxServer(port=0, seconds_per_step=0.01, seed=5) as openai_server,
        TogetherSandboxServer(
            seconds_per_step=0.01, seed=5, data_dir=tmp_path / "tg", serve_fine_tunes=True
        ) as together_server,
    ):
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", openai_server.base_url)
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", together_server.base_url)
        database.reset()
        yield openai_server, together_server


def _ftm(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "80"})


def _plan() -> dict:
    shown = _ftm("models", "plan", "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


def _quality(run_id: int) -> float:
    from db.engine import read_session
    from db.models import EvalRun

    with read_session(database.get_engine()) as session:
        return session.get(EvalRun, run_id).summary["task"]["quality"]


def test_migrations_openai_to_together_to_local_and_local_to_together(
    emulators, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTM_TODAY", NEAR_CUTOFF)  # the lifecycle service's clock
    _, together_server = emulators
    engine = database.get_engine()
    add_ticket_datasets(tmp_path)
    baselines = evaluate(  # zero-shot and the few-shot baseline the gates compare with
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
    (few_shot,) = [run for run in baselines if run.candidate_kind == "few_shot"]
    hosted = train(engine, "tickets", "routing")
    (hosted_run,) = evaluate(
        EvalRequest(
            task="routing",
            dataset="tickets",
            provider="openai",
            base_model=BASE,
            job_ids=[hosted.id],
            zero_shot=False,
            few_shot=0,
            max_tokens=8,
        ),
        engine=engine,
    )
    aliases.promote(
        engine, task="routing", alias="production", run_id=hosted_run.id, who="ci",
        why="in production before the migration", override=True,
    )  # fmt: skip

    # 1. OpenAI -> Together: epochs carried, the multiplier has no absolute rate behind it
    to_together = _ftm(
        "migrate", "--task", "routing", "--to", "together", "--model", TOGETHER_BASE,
        "--batch-size", "8", "--timeout", "120", "--no-promote",
    )  # fmt: skip
    out = to_together.output
    print(out)
    assert to_together.exit_code == 0, out
    mapping = _mapping(out)
    assert mapping and all(len(line) <= 80 for line in mapping), mapping
    assert _said("settings, openai -> together:", out)
    n_epochs = hosted.hyperparameters["n_epochs"]
    assert _said(f"epochs {n_epochs} -> {n_epochs}", out)
    # the emulator's auto batch of 1 is below Together's minimum of 8 for this model
    assert _said(
        f"batch size {hosted.hyperparameters['batch_size']} -> 8 (set with --batch-size)", out
    )
    assert any(line.split()[:2] == ["learning", "rate"] for line in mapping), mapping
    assert _said("pass baseline:", out) and _said("pass general:", out)
    assert _said("gates pass; not promoted (--no-promote)", out)
    together_job = newest_job(engine)
    assert together_job.provider == "together" and together_job.status == "succeeded"
    assert together_job.dataset_id == hosted.dataset_id
    assert together_server.state.jobs[together_job.remote_id].n_epochs == n_epochs

    # the plan, near OpenAI's cutoff, names the Together fine-tune as the replacement
    (entry,) = _plan()["entries"]
    assert (entry["alias"], entry["provider"]) == ("production", "openai")
    replacement = entry["replacement"]
    assert replacement["provider"] == "together"
    assert replacement["model"] == together_job.fine_tuned_model
    text = _ftm("models", "plan").output
    print(text)
    prices = TogetherProvider.pricing()
    if prices is None:  # no Together prices declared on the contract: nothing to project
        assert replacement["projected_usd"] is None and "no price recorded" in text
    else:  # per-token at the fine-tuned rates, plus the endpoint's hours over 12 months
        declared = prices.models[TOGETHER_BASE]
        assert replacement["hosting_per_hour"] == declared.hosting_per_hour > 0
        assert replacement["cost_per_1k_usd"] is not None  # priced at the base's ft rates
        per_request = replacement["cost_per_1k_usd"] / 1000
        hours = 730 * 12  # the catalog's hours per month, over the default horizon
        assert replacement["projected_usd"] == pytest.approx(
            per_request * 10_000 * 12 + declared.hosting_per_hour * hours
        )
        assert _said(f"+ hosting ${declared.hosting_per_hour:.2f}/h", text)
    do = f"ftm promote --task routing --alias production --run {replacement['run_id']}"
    assert _said(do, text)
    promoted = _ftm(*do.split()[1:])
    assert promoted.exit_code == 0, promoted.output
    assert _plan()["entries"] == []  # Together is not being retired: nothing to move
    together_holder = aliases.current(engine, "routing", "production").promotion
    assert together_holder.provider == "together"
    assert together_holder.model == together_job.fine_tuned_model

    # 2. Together -> local: the Together job's data and recipe on the tiny model
    to_local = _ftm(
        "migrate", "--task", "routing", "--to", "local", "--model", str(tiny_model),
        "--option", "learning_rate=1e-3", "--option", "r=4", "--option", "alpha=8",
        "--option", "torch_threads=2", "--option", "device=cpu", "--timeout", "600",
    )  # fmt: skip
    out = to_local.output
    print(out)
    mapping = _mapping(out)
    assert mapping and all(len(line) <= 80 for line in mapping), mapping
    assert _said("settings, together -> local:", out)
    assert _said(f"epochs {n_epochs} -> {n_epochs}", out)
    assert _said("batch size 8 -> 8", out)
    local_job = newest_job(engine)
    assert local_job.provider == "local" and local_job.status == "succeeded"
    assert local_job.dataset_id == hosted.dataset_id
    assert local_job.hyperparameters["epochs"] == n_epochs
    assert local_job.hyperparameters["batch_size"] == 8
    # the tiny model does not learn the routing task: refused, the gate named ...
    assert to_local.exit_code == 1
    assert _said("FAIL baseline:", out) and "does not beat the few-shot baseline" in out
    assert _said("not promoted: routing/production still holds", out)
    assert aliases.current(engine, "routing", "production").promotion.id == together_holder.id
    # ... and rightly: on the same eval set it does no better than the few-shot
    # baseline, and worse than the Together model that holds the alias
    local_run = _newest_run(engine)
    assert local_run.job_id == local_job.id
    assert local_run.config["dataset_id"] == few_shot.config["dataset_id"]
    assert _quality(local_run.id) <= _quality(few_shot.id) < _quality(together_holder.eval_run_id)

    # 3. local -> Together: the local adapter, put in production by hand, moves back
    aliases.promote(
        engine, task="routing", alias="production", run_id=local_run.id, who="ci",
        why="serving in-house for a while", override=True,
    )  # fmt: skip
    back = _ftm(
        "migrate", "--task", "routing", "--to", "together", "--model", TOGETHER_BASE,
        "--timeout", "120",
    )  # fmt: skip
    out = back.output
    print(out)
    assert back.exit_code == 0, out
    mapping = _mapping(out)
    assert mapping and all(len(line) <= 80 for line in mapping), mapping
    assert _said("settings, local -> together:", out)
    assert _said(f"epochs {n_epochs} -> {n_epochs}", out) and _said("batch size 8 -> 8", out)
    assert any(line.split()[:2] == ["learning", "rate"] for line in mapping), mapping
    assert _said("pass baseline:", out) and _said("pass general:", out)
    back_job = newest_job(engine)
    assert back_job.provider == "together" and back_job.dataset_id == hosted.dataset_id
    assert together_server.state.jobs[back_job.remote_id].n_epochs == n_epochs
    assert together_server.state.jobs[back_job.remote_id].batch_size == 8
    holder = aliases.current(engine, "routing", "production").promotion
    assert holder.provider == "together" and holder.model == back_job.fine_tuned_model
    assert "migrated from" in holder.why and database_job(engine, holder.job_id).id == back_job.id


def _newest_run(engine):
    from sqlmodel import select

    from db.engine import read_session
    from db.models import EvalRun

    with read_session(engine) as session:
        return session.exec(select(EvalRun).order_by(EvalRun.id.desc())).first()
