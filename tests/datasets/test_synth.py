"""`ftm data synth` end to end against the OpenAI sandbox emulator (the real SDK over real
HTTP; its base model answers a synthesis prompt with a crossover of the prompt's first two
seed examples, see app/sandbox/synth_reply.py)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from app.datasets.formats import similarity_text
from app.datasets.minhash import signatures, similarity
from app.datasets.store import add_dataset, get_dataset, load_examples
from app.sandbox.server import SandboxServer
from db.engine import read_session
from db.models import InferenceCache
from tests.evaluation.sandbox_fixtures import ticket_rows, write_jsonl

TEACHER = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def sandbox(monkeypatch):
    with SandboxServer(port=0, seconds_per_step=0.01, seed=5) as server:
        monkeypatch.setenv("FTM_OPENAI__SANDBOX", "true")
        monkeypatch.setenv("FTM_OPENAI__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def _synth(*extra: str, source: str = "tickets"):
    base = ["data", "synth", "--from", source, "--provider", "openai", "--model", TEACHER]
    return _cli(*base, *extra)


def _tickets(tmp_path, n: int = 40):
    dataset, _ = add_dataset(
        write_jsonl(tmp_path / "tickets.jsonl", ticket_rows(n)),
        name="tickets",
        val_fraction=0.25,
        seed=1,
    )
    return dataset


def _inference_rows() -> int:
    with read_session(database.get_engine()) as session:
        return len(session.exec(__import__("sqlmodel").select(InferenceCache)).all())


def test_synth_keeps_checked_balanced_examples_and_records_lineage(sandbox, tmp_path):
    source = _tickets(tmp_path)
    result = _synth("--count", "12", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    synth = out["synth"]["result"]
    assert synth["requested"] == 12
    assert synth["kept"] == 12
    assert synth["attempts"] == 12 + sum(synth["dropped"].values())
    # Balanced label quotas: 12 over 4 labels.
    assert synth["kept_by_label"] == {"account": 3, "billing": 3, "shipping": 3, "technical": 3}

    lineage = out["synth"]
    assert lineage["parent_dataset_id"] == source.id
    assert lineage["teacher"] == {"provider": "openai", "model": TEACHER, "simulated": True}
    assert lineage["template"] == "synth-v1"
    assert lineage["settings"]["seed"] == 0
    with read_session(database.get_engine()) as session:
        made = get_dataset(session, "tickets-synth")
    assert made.stats["lineage"] == lineage  # stored with the dataset, not only printed
    assert made.n_examples == 12

    # Every example is new: none equals or nearly equals a validation or seed example.
    made_examples = load_examples(made, "train") + load_examples(made, "validation")
    val = load_examples(source, "validation")
    train = load_examples(source, "train")
    sigs = signatures([similarity_text(e) for e in made_examples])
    for group in (val, train):
        other = signatures([similarity_text(e) for e in group])
        for sig in sigs:
            assert (similarity(other, sig[None, :]) < 0.85).all()
        assert not {json.dumps(e, sort_keys=True) for e in made_examples} & {
            json.dumps(e, sort_keys=True) for e in group
        }


def test_rerun_is_answered_from_the_cache_and_costs_nothing(sandbox, tmp_path):
    _tickets(tmp_path)
    first = _synth("--count", "10")
    assert first.exit_code == 0, first.output
    estimated, actual, requests, cached = _spend(first.output)
    assert cached == 0 and actual > 0
    # The estimate is for the wanted count; the actual run also paid for dropped replies.
    assert actual == pytest.approx(estimated * requests / 10, rel=0.5)
    rows = _inference_rows()
    assert rows == requests

    second = _synth("--count", "10")
    assert second.exit_code == 0, second.output
    _, actual_again, requests_again, cached_again = _spend(second.output)
    assert (actual_again, requests_again, cached_again) == (0.0, requests, requests)
    assert _inference_rows() == rows  # nothing new was asked
    assert "already added (same content)" in second.output


def _spend(output: str) -> tuple[float, float, int, int]:
    found = re.search(
        r"teacher cost: estimated \$([\d.]+), actual \$([\d.]+) \((\d+) requests, "
        r"(\d+) from the cache\)",
        output,
    )
    assert found, output
    return float(found[1]), float(found[2]), int(found[3]), int(found[4])


def test_max_spend_below_the_estimate_refuses_before_any_request(sandbox, tmp_path):
    _tickets(tmp_path)
    result = _synth("--count", "50", "--max-spend", "0.000001")
    assert result.exit_code != 0
    assert "above --max-spend $0.0000" in result.output
    assert "Traceback" not in result.output
    assert _inference_rows() == 0
