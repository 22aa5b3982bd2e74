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
from db.engine import read_session
from db.models import InferenceCache
from tests.datasets.synth_fixtures import TEACHER, sandbox, tickets  # noqa: F401  (fixture)
from tests.evaluation.sandbox_fixtures import write_jsonl


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def _synth(*extra: str, source: str = "tickets"):
    base = ["data", "synth", "--from", source, "--provider", "openai", "--model", TEACHER]
    return _cli(*base, *extra)


def _inference_rows() -> int:
    with read_session(database.get_engine()) as session:
        return len(session.exec(__import__("sqlmodel").select(InferenceCache)).all())


@pytest.mark.usefixtures("sandbox")
def test_synth_keeps_checked_balanced_examples_and_records_lineage(tmp_path):
    source = tickets(tmp_path)
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
    shown = _cli("data", "show", "tickets-synth").output
    assert f"made by ftm data synth from dataset 'tickets' (id {source.id})" in shown
    assert f"teacher openai {TEACHER} (sandbox), template synth-v1, seed 0" in shown

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


@pytest.mark.usefixtures("sandbox")
def test_rerun_is_answered_from_the_cache_and_costs_nothing(tmp_path):
    tickets(tmp_path)
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


@pytest.mark.usefixtures("sandbox")
def test_max_spend_below_the_estimate_refuses_before_any_request(tmp_path):
    tickets(tmp_path)
    result = _synth("--count", "50", "--max-spend", "0.000001")
    assert result.exit_code != 0
    assert "above --max-spend $0.0000" in result.output
    assert "Traceback" not in result.output
    assert _inference_rows() == 0


def _crossover_rows(n_topics: int = 10) -> list[dict]:
    """Topics with words of their own, and every crossover of two of them, which is just
    what the emulated teacher writes: so whatever it writes is already in the dataset,
    in its train split (a seed) or in its validation half (a leak if kept)."""

    def words(t: int) -> list[str]:
        return [f"t{t}w{k}" for k in range(8)]

    def row(a: int, b: int) -> dict:
        user = " ".join(words(a)[:4] + words(b)[4:])
        reply = f"the long answer about topic {a} goes here"
        return {
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        }

    return [row(a, b) for a in range(n_topics) for b in range(n_topics)]


@pytest.mark.usefixtures("sandbox")
def test_a_copy_of_a_validation_example_is_dropped_as_a_leak(tmp_path):
    add_dataset(
        write_jsonl(tmp_path / "cross.jsonl", _crossover_rows()),
        name="cross",
        val_fraction=0.25,
        seed=2,
    )
    result = _synth("--count", "10", "--max-attempts", "30", source="cross")
    assert result.exit_code == 1, result.output
    assert "no generated example was kept after 30 request(s)" in result.output
    dropped = dict(re.findall(r"(near_duplicate_of_\w+) (\d+)", result.output))
    assert int(dropped["near_duplicate_of_validation"]) > 0, result.output
    assert int(dropped["near_duplicate_of_seed"]) > 0, result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("sandbox")
def test_a_reply_cut_short_is_dropped_as_unparseable(tmp_path):
    tickets(tmp_path)
    result = _synth("--count", "10", "--max-tokens", "8", "--max-attempts", "5")
    assert result.exit_code == 1, result.output
    assert "(dropped: unparseable 5)" in result.output


@pytest.mark.usefixtures("sandbox")
def test_the_run_stops_before_its_spend_would_pass_max_spend(tmp_path):
    tickets(tmp_path)
    # Above the estimate for one request per example, below what 20 kept examples cost
    # once dropped replies are paid for too (the sandbox drops about a third here).
    result = _synth("--count", "20", "--max-spend", "0.0016")
    assert result.exit_code == 0, result.output
    assert "stopped early: spend cap reached" in result.output
    _, actual, requests, _ = _spend(result.output)
    assert 0.0014 < actual <= 0.0016
    kept = int(re.search(r"kept (\d+)", result.output)[1])
    assert 10 <= kept < 20


@pytest.mark.usefixtures("sandbox")
def test_a_failing_teacher_or_too_few_kept_is_said_plainly(tmp_path):
    tickets(tmp_path)
    result = _cli(
        "data",
        "synth",
        "--from",
        "tickets",
        "-p",
        "openai",
        "-m",
        "gpt-4o-mini-2024-07-18",
        "--count",
        "12",
        "--max-attempts",
        "3",
        "--name",
        "few",
    )
    assert result.exit_code == 1
    assert re.search(r"[1-3] example\(s\) were kept and written to", result.output)
    assert "too_few_examples" in result.output and "Traceback" not in result.output

    missing = _cli(
        "data",
        "synth",
        "--from",
        "tickets",
        "-p",
        "openai",
        "-m",
        "no-such-model-xyz",
        "--count",
        "10",
    )
    assert missing.exit_code == 1
    assert "stopped: the teacher failed: openai model no-such-model-xyz" in missing.output
    assert "Traceback" not in missing.output
