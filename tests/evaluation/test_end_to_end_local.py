"""End to end on real parts: a model fine-tuned on the sandbox is promoted, then migrated
to a local LoRA on a tiny Llama (real training in a worker process, real batched local
generation), evaluated on the same eval set, promoted through the gates, merged and
exported, and rolled back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.datasets.store import add_dataset
from app.evaluation.service import EvalRequest, evaluate
from app.promotion import aliases
from app.promotion.migrate import MigrationRequest, migrate_alias
from app.sandbox.server import SandboxServer
from app.settings import get_settings
from providers.local import demo_data
from tests.evaluation.sandbox_fixtures import BASE, train

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(monkeypatch):
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


def _cli(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def test_migrate_a_sandbox_model_to_a_local_lora_and_promote_merged(sandbox, tiny_model, tmp_path):
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
    hosted_run = runs[-1]
    # The sandbox's nearest-match "fine-tune" is not what is under test here: whatever it
    # scored, it is the production model to migrate away from (an override, recorded).
    row, _ = aliases.promote(
        engine,
        task="labels",
        alias="production",
        run_id=hosted_run.id,
        who="ci",
        why="the model in production before the migration",
        override=True,
    )
    assert row.model == hosted.fine_tuned_model

    events: list[str] = []
    result = migrate_alias(
        engine,
        MigrationRequest(
            task="labels",
            alias="production",
            to_provider="local",
            base_model=str(tiny_model),
            method="lora",
            epochs=10,  # the recipe `ftm demo` uses for this task
            options={"learning_rate": 3e-3, "batch_size": 8, "torch_threads": 2, "device": "cpu"},
            timeout_s=600,
        ),
        on_event=events.append,
    )
    text = "\n".join(events)
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    assert "retires on 2027-01-14" in text  # the hosted base's sunset is flagged
    assert result.job.provider == "local" and result.job.status == "succeeded"
    adapter = get_settings().file_store.local_path(result.job.fine_tuned_model)
    assert (adapter / "adapter_config.json").is_file()
    # the same eval set and config as the promoted model's run
    assert result.run.config["dataset_id"] == hosted_run.config["dataset_id"]
    assert result.run.config["scorers"] == hosted_run.config["scorers"] == ["label"]
    assert result.run.summary["task"]["n"] == hosted_run.summary["task"]["n"]
    local_q = result.run.summary["task"]["quality"]
    base_q = result.base_run.summary["task"]["quality"]
    assert local_q > base_q and local_q >= 0.6, (local_q, base_q)
    assert result.promoted, text
    holder = aliases.current(engine, "labels", "production")
    assert holder.promotion.provider == "local" and holder.promotion.model_kind == "adapter"
    assert "migrated from" in holder.promotion.why

    # the local candidates are priced as self-hosted GPU time, so they have a cost per
    # 1,000 requests and a break-even against the local few-shot baseline too
    from app.evaluation.compare import leaderboard

    board = {r.run_id: r for r in leaderboard(engine, "labels")}
    local_row = board[result.run.id]
    assert local_row.cost_per_1k_usd is not None and local_row.cost_per_1k_usd > 0
    assert any(n.startswith("self-hosted on ") for n in local_row.notes), local_row.notes
    assert local_row.breakeven_requests is not None and local_row.breakeven_requests > 0
    assert board[result.base_run.id].cost_per_1k_usd > 0

    # promote the evaluated adapter again, merged into its base, and export it
    merged = _cli(
        "promote", "--task", "labels", "--alias", "staging", "--run", str(result.run.id), "--merge"
    )
    assert merged.exit_code == 0, merged.output
    record = json.loads(_cli("models", "export", "--alias", "staging").output)
    assert record["model_kind"] == "merged" and record["base_url"] is None
    merged_dir = Path(record["path"])
    assert (merged_dir / "config.json").is_file() and (
        merged_dir / "ftm_merged_from.json"
    ).is_file()

    # the merged model answers like the adapter (same eval, real local generation)
    from providers.local import LocalProvider
    from providers.types import ChatMessage

    prompt = [
        ChatMessage("system", demo_data.SYSTEM),
        ChatMessage("user", "I saw the cat yesterday."),
    ]
    local = LocalProvider()
    assert (
        local.complete(str(merged_dir), prompt, max_tokens=4).text
        == local.complete(str(adapter), prompt, max_tokens=4).text
    )

    back = _cli("promote", "--task", "labels", "--rollback")
    assert back.exit_code == 0 and hosted.fine_tuned_model in back.output


def test_ftm_eval_on_the_local_provider_is_batched_and_cached(tiny_model, tmp_path):
    data = demo_data.write_jsonl(tmp_path / "labels.jsonl", demo_data.labelling_examples(60, 2))
    add_dataset(data, name="labels", val_fraction=0.2, seed=1)
    args = (
        "eval",
        "--task",
        "labels",
        "--dataset",
        "labels",
        "--provider",
        "local",
        "--base",
        str(tiny_model),
        "--few-shot",
        "2",
        "--max-tokens",
        "4",
        "--json",
    )
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    runs = json.loads(first.stdout)
    assert [r["kind"] for r in runs] == ["zero_shot", "few_shot"]
    zero, few = (r["summary"] for r in runs)
    assert zero["task"]["n"] == 12 and zero["general"]["n"] >= 20
    assert zero["calls"] == 12 + zero["general"]["n"]
    # the general set is asked plainly for both: the few-shot run reuses those completions
    assert few["calls"] == 12 and few["cached"] == few["general"]["n"]
    assert few["task"]["mean_prompt_tokens"] > zero["task"]["mean_prompt_tokens"]
    again = json.loads(_cli(*args).stdout)
    assert all(r["summary"]["calls"] == 0 for r in again)
    assert [r["summary"]["task"]["scores"] for r in again] == [
        z["task"]["scores"] for z in (zero, few)
    ]
