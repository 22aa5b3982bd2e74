"""`ftm compare` shows a fine-tune trained on a mixed dataset beside one trained on the
unmixed task dataset: both rows, their general scores and forgetting against the base,
and which one had general data mixed in. The eval runs and jobs are recorded rows in a
real database (running real evaluations here would cost minutes of CI)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.cli.main import cli
from app.database import get_engine
from app.datasets.mix import mix_dataset
from app.datasets.store import add_dataset
from db.engine import write_session
from db.models import EvalRun, Job
from tests.datasets.helpers import chat, write_jsonl

BASE = "gpt-4o-mini-2024-07-18"


def _eval_run(session, kind: str, model: str, general: float, job_id: int | None = None):
    run = EvalRun(
        task="tickets",
        candidate_kind=kind,
        provider="openai",
        model=model,
        job_id=job_id,
        status="succeeded",
        config={"candidate": {"base_model": BASE}},
        summary={
            "task": {"quality": 0.8, "format": 1.0, "n": 9, "primary": "exact"},
            "general": {"score": general},
        },
    )
    session.add(run)
    session.flush()
    return run.id


def test_compare_shows_mixed_and_unmixed_fine_tunes_side_by_side(tmp_path, ftm_home):
    task, _ = add_dataset(write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(90)]))
    mixed = mix_dataset(str(task.id), share=0.1, name="tickets-mixed").dataset
    with write_session(get_engine()) as session:
        runs = {}
        _eval_run(session, "zero_shot", BASE, general=0.9)
        for label, dataset, general in (("plain", task, 0.6), ("mixed", mixed, 0.85)):
            model = f"ft:{BASE}:acme::{label}"
            job = Job(
                name=label,
                provider="openai",
                base_model=BASE,
                dataset_id=dataset.id,
                method="supervised",
                status="succeeded",
                fine_tuned_model=model,
            )
            session.add(job)
            session.flush()
            runs[label] = _eval_run(session, "fine_tuned", model, general, job.id)

    out = CliRunner().invoke(cli, ["compare", "--task", "tickets", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["run_id"]: r for r in json.loads(out.output)}
    plain, mix = rows[runs["plain"]], rows[runs["mixed"]]
    assert round(plain["forgetting_delta"], 3) == -0.3
    assert round(mix["forgetting_delta"], 3) == -0.05
    assert any(
        n == "trained on 'tickets-mixed': 0.100 general by examples (builtin, seed 0) mixed into "
        "'tickets'"
        for n in mix["notes"]
    ), mix["notes"]
    assert not any(n.startswith("trained on") for n in plain["notes"])

    table = CliRunner().invoke(cli, ["compare", "--task", "tickets"], terminal_width=160)
    assert table.exit_code == 0, table.output
    assert "acme::plain" in table.output and "acme::mixed" in table.output
    assert f"run {runs['mixed']}: trained on 'tickets-mixed'" in table.output
