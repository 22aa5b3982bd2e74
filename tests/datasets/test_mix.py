"""`ftm data mix`: an exact general share by examples or tokens, seeded, spread evenly,
deduped across both datasets, the validation split untouched, lineage recorded, the
shipped general set, and clear errors. Real datasets in a real database; the counts are
checked against what `ftm data add` stored, not against the mixer's own arithmetic."""

from __future__ import annotations

import json
import tomllib

import orjson
import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.database import get_engine
from app.datasets.check import check_file
from app.datasets.mix import BUILTIN_PATH, MixError, load_builtin, mix_dataset, plan_mix
from app.datasets.scan import content_bytes
from app.datasets.store import add_dataset, load_examples, token_counts
from app.evaluation.general import GENERAL_SET_PATH
from db.engine import read_session
from tests.conftest import REPO_ROOT
from tests.datasets.helpers import chat, preference, write_jsonl

BUILTIN_KEYS = {content_bytes(e) for e in load_builtin()}


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def task(tmp_path, ftm_home):
    """90 task examples: 81 train, 9 validation."""
    path = write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(90)])
    dataset, _ = add_dataset(path, name="tickets", val_fraction=0.1, seed=5)
    return dataset


def _general_positions(dataset) -> list[int]:
    return [
        i for i, e in enumerate(load_examples(dataset, "train")) if content_bytes(e) in BUILTIN_KEYS
    ]


def test_share_by_examples_is_exact_spread_evenly_and_printed(task):
    out = run("data", "mix", "tickets", "--share", "0.1", "--name", "tickets-mixed")
    assert out.exit_code == 0, out.output
    assert "general share by examples: 0.100 (asked 0.100; 9 of 90 examples)" in out.output
    mixed = json.loads(run("data", "show", "tickets-mixed", "--json").output)
    with read_session(get_engine()) as session:
        from app.datasets.store import get_dataset

        dataset = get_dataset(session, mixed["id"])
    train = load_examples(dataset, "train")
    positions = _general_positions(dataset)
    assert len(train) == 90 and len(positions) == 9  # 9 / 90 = 0.1 exactly
    # Spread: one general example in each tenth of the train split, none bunched.
    assert sorted(p * 9 // 90 for p in positions) == list(range(9))
    # The task's train examples are all there, in their order.
    task_train = load_examples(task, "train")
    assert [e for i, e in enumerate(train) if i not in set(positions)] == task_train


def test_share_by_tokens_is_exact_by_the_stored_token_counts(task):
    result = mix_dataset("tickets", share=0.2, by="tokens", seed=1)
    with read_session(get_engine()) as session:
        counts = token_counts(session, result.dataset, "tiktoken:o200k_base", "train")
    positions = set(_general_positions(result.dataset))
    general = sum(c for i, c in enumerate(counts) if i in positions)
    achieved = general / sum(counts)
    assert round(achieved, 3) == 0.2, achieved
    assert result.plan.achieved_share == pytest.approx(achieved)
    assert result.dataset.stats["lineage"]["by"] == "tokens"


def test_validation_split_untouched_and_free_of_general_data(task):
    result = mix_dataset("tickets", share=0.3, seed=2)
    mixed = result.dataset
    assert load_examples(mixed, "validation") == load_examples(task, "validation")
    assert (mixed.n_validation, mixed.n_train) == (task.n_validation, 81 + round(0.3 * 81 / 0.7))
    # The stored split (validation indices) is the task's validation, at the file's end.
    assert mixed.validation_indices == list(range(mixed.n_train, mixed.n_examples))
    assert mixed.report["duplicates"]["leakage"]["count"] == 0


def test_same_seed_same_mix_other_seed_other_choice(task):
    first = mix_dataset("tickets", share=0.1, seed=7)
    again = mix_dataset("tickets", share=0.1, seed=7)
    other = mix_dataset("tickets", share=0.1, seed=8)
    assert not again.created and again.dataset.id == first.dataset.id
    assert first.dataset.content_hash == again.dataset.content_hash
    assert other.created and other.dataset.content_hash != first.dataset.content_hash
    pick = [
        load_examples(d.dataset, "train")[p]
        for d in (first, other)
        for p in d.plan.general_positions
    ]
    assert pick[:9] != pick[9:]


def _long(i: int, tail: str = "") -> dict:
    """A long chat example, so that changing one word leaves a near-duplicate."""
    words = " ".join(f"word{j}x{i}" for j in range(80))
    return {
        "messages": [
            {"role": "user", "content": f"Summarise the notes {i}: {words}"},
            {"role": "assistant", "content": f"Summary {i}: the notes list eighty words{tail}."},
        ]
    }


def test_general_examples_repeating_the_task_are_left_out(tmp_path, ftm_home):
    task_rows = [chat(i) for i in range(40)] + [_long(i) for i in range(100, 110)]
    task_ds, _ = add_dataset(write_jsonl(tmp_path / "t.jsonl", task_rows), name="t", seed=3)
    val = load_examples(task_ds, "validation")[0]
    repeats = [
        load_examples(task_ds, "train")[0],  # exact copy of a task train example
        val,  # exact copy of a task validation example
        _long(105, tail=" indeed"),  # near-duplicate of a task example
    ]
    unique = [chat(i, system="Be kind.", reply=f"Fresh answer number {i}") for i in range(500, 520)]
    general_rows = repeats + unique + [unique[0]]  # and one repeat inside the general set
    # The general set must be addable on its own: the repeat inside it is only a warning.
    general_ds, _ = add_dataset(
        write_jsonl(tmp_path / "g.jsonl", general_rows), name="g", val_fraction=0.0
    )
    n_train = task_ds.n_train
    need = len(unique)  # share chosen so that exactly every unique example is needed
    share = need / (n_train + need)
    result = mix_dataset("t", "g", share=share, seed=0)
    assert result.plan.n_duplicates == 4 and result.plan.n_general == need
    train = load_examples(result.dataset, "train")
    keys = [content_bytes(e) for e in train]
    assert len(keys) == len(set(keys))  # nothing added twice
    assert content_bytes(val) not in keys
    assert not any("indeed" in e["messages"][-1]["content"] for e in train)
    # One more than the unique ones is refused, saying how many are needed and why.
    with pytest.raises(
        MixError,
        match=rf"needs {need + 1} general examples; 'g' has {need} "
        r"usable \(4 more repeat task examples",
    ):
        mix_dataset("t", "g", share=(need + 1) / (n_train + need + 1))
    del general_ds


def test_lineage_names_both_parents_share_by_and_seed(task):
    out = run(
        "data",
        "mix",
        "tickets",
        "--with",
        "builtin",
        "--share",
        "0.25",
        "--by",
        "tokens",
        "--seed",
        "4",
        "--json",
    )
    assert out.exit_code == 0, out.output
    lineage = json.loads(out.output)["lineage"]
    assert lineage["task"] == {"id": task.id, "name": "tickets", "content_hash": task.content_hash}
    import hashlib

    assert lineage["general"] == {
        "name": "builtin",
        "sha256": hashlib.sha256(BUILTIN_PATH.read_bytes()).hexdigest(),
    }
    assert (lineage["share"], lineage["by"], lineage["seed"]) == (0.25, "tokens", 4)
    assert round(lineage["achieved_share"], 3) == 0.25
    # The lineage is kept in the database, not only printed.
    new_id = str(json.loads(out.output)["id"])
    shown = json.loads(run("data", "show", new_id, "--json").output)
    assert shown["stats"]["lineage"] == lineage and shown["name"] == "tickets-mix0.25-tokens"
    text = run("data", "show", new_id).output
    assert "mix: 0.250 general by tokens (builtin, seed 4) mixed into 'tickets'" in text


def test_builtin_set_ships_checks_clean_has_its_licence_and_not_the_eval_prompts(ftm_home):
    report = check_file(BUILTIN_PATH)
    assert report.verdict == "ok" and report.n_valid >= 300
    assert report.duplicates["exact_copies"] == 0 and report.duplicates["near_pairs"] == 0
    header = (BUILTIN_PATH.with_name("general_mix.README.md")).read_text()
    assert "Licence**: MIT" in header and "written for ftm" in header
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["*"]
    assert "*.jsonl" in package_data and "general_mix.README.md" in package_data
    # Mixing must not train on the forgetting check's own questions.
    eval_prompts = [orjson.loads(line)["prompt"] for line in GENERAL_SET_PATH.open("rb")]
    as_tasks = [{"messages": [{"role": "user", "content": p}]} for p in eval_prompts]
    plan = plan_mix(as_tasks, [], load_builtin(), share=0.5)
    assert plan.n_duplicates == 0
    user_turns = {e["messages"][1]["content"] for e in load_builtin()}
    assert not user_turns & set(eval_prompts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--share", "0"), "--share must be above 0 and below 1"),
        (("--share", "1"), "--share must be above 0 and below 1"),
        (("--share", "-0.2"), "--share must be above 0 and below 1"),
        (("--share", "0.9"), "needs 729 general examples; the builtin set has 314 usable"),
        (("--share", "0.9", "--by", "tokens"), "general tokens; the builtin set has 13,"),
        (("--share", "0.1", "--with", "nosuch"), "--with: no dataset 'nosuch'"),
    ],
)
def test_errors_say_what_and_what_to_do(task, args, message):
    out = CliRunner().invoke(cli, ["data", "mix", "tickets", *args])
    assert out.exit_code == 1 and message in out.output, out.output
    assert "Traceback" not in out.output


def test_unknown_task_and_a_format_that_cannot_be_mixed(tmp_path, ftm_home):
    out = CliRunner().invoke(cli, ["data", "mix", "nosuch", "--share", "0.1"])
    assert out.exit_code == 1 and "no dataset 'nosuch'" in out.output
    add_dataset(write_jsonl(tmp_path / "p.jsonl", [preference(i) for i in range(12)]), name="p")
    out = CliRunner().invoke(cli, ["data", "mix", "p", "--share", "0.1"])
    assert out.exit_code == 1 and "'p' is preference; only chat datasets" in out.output
