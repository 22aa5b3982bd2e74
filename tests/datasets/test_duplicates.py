"""Exact and near duplicates, train/validation leakage and the cleaned file."""

from __future__ import annotations

import numpy as np

from app.datasets import minhash
from app.datasets.check import check_file
from app.datasets.store import add_dataset, dedupe_file, load_examples
from tests.datasets.helpers import chat, lines_of, write_jsonl

LOREM = (
    "the customer asked about a refund for the damaged package and we explained the "
    "return policy in detail including shipping labels and the timeline for the refund "
    "to reach the original card after inspection at the warehouse"
)


def story(i: int) -> dict:
    words = [f"w{i}x{k}" for k in range(40)]
    return {
        "messages": [
            {"role": "user", "content": " ".join(words)},
            {"role": "assistant", "content": f"Answer {i} " + " ".join(reversed(words))},
        ]
    }


def test_exact_duplicates_with_line_numbers(tmp_path):
    rows = [story(i) for i in range(12)] + [story(3), story(3), story(7)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert lines_of(report, "duplicate_example") == [13, 14, 15]
    assert report.duplicates["exact_groups"] == 2 and report.duplicates["exact_copies"] == 3
    pairs = {(p["line"], p["duplicate_of"]) for p in report.duplicates["pairs"]}
    assert pairs == {(13, 4), (14, 4), (15, 8)}
    assert report.verdict == "warnings"


def test_key_order_and_whitespace_do_not_hide_an_exact_duplicate(tmp_path):
    rows = [story(i) for i in range(12)]
    path = write_jsonl(
        tmp_path / "d.jsonl",
        rows,
        raw_lines={
            12: b'{ "messages" : [ {"content": "'
            + " ".join(f"w0x{k}" for k in range(40)).encode()
            + b'", "role": "user"}, {"content": "Answer 0 '
            + " ".join(f"w0x{k}" for k in reversed(range(40))).encode()
            + b'", "role": "assistant"} ] }'
        },
    )
    report = check_file(path)
    assert lines_of(report, "duplicate_example") == [12]


def test_near_duplicates_are_found_and_unrelated_examples_are_not(tmp_path):
    rows = [story(i) for i in range(20)]
    near = story(5)
    near["messages"][0]["content"] = near["messages"][0]["content"].replace("w5x10", "changed")
    rows.append(near)  # line 21, one word of 81 changed
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert lines_of(report, "near_duplicate_example") == [21]
    pair = next(p for p in report.duplicates["pairs"] if p["kind"] == "near")
    assert pair["duplicate_of"] == 6 and pair["similarity"] >= 0.85
    assert "duplicate_example" not in report.counts_by_category


def test_threshold_is_configurable(tmp_path, monkeypatch):
    rows = [story(i) for i in range(20)]
    half = story(5)
    words = half["messages"][0]["content"].split()
    half["messages"][0]["content"] = " ".join(words[:20] + [f"new{k}" for k in range(20)])
    rows.append(half)
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert not lines_of(check_file(path), "near_duplicate_example")
    assert lines_of(check_file(path, near_dup_threshold=0.4), "near_duplicate_example") == [21]
    monkeypatch.setenv("FTM_DATA__NEAR_DUPLICATE_THRESHOLD", "0.4")
    from app.settings import get_settings

    get_settings.cache_clear()
    assert lines_of(check_file(path), "near_duplicate_example") == [21]


def test_minhash_estimates_jaccard():
    rng = np.random.default_rng(0)
    base = [f"t{k}" for k in rng.integers(0, 10_000, 300)]
    for changed in (10, 40, 120):
        other = list(base)
        for k in rng.choice(300, changed, replace=False):
            other[k] = f"z{k}"
        a = set(zip(base, base[1:], base[2:], strict=False))
        b = set(zip(other, other[1:], other[2:], strict=False))
        true = len(a & b) / len(a | b)
        sigs = minhash.signatures([" ".join(base), " ".join(other)])
        assert abs(minhash.similarity(sigs[0], sigs[1]) - true) < 0.15


def test_leakage_between_train_and_validation(tmp_path):
    rows = [story(i) for i in range(30)] + [story(i) for i in range(30)]  # every example twice
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows), val_fraction=0.2, seed=1)
    leakage = report.duplicates["leakage"]
    val_lines = set(report.arrays.lines[report.arrays.val_indices].tolist())
    assert leakage["count"] > 0
    for val_line, train_line in leakage["pairs"]:
        assert val_line in val_lines and train_line not in val_lines
        assert (val_line - 1) % 30 == (train_line - 1) % 30  # the same story
    assert sorted(lines_of(report, "train_validation_leakage")) == sorted(
        p[0] for p in leakage["pairs"]
    )


def test_dedupe_writes_a_cleaned_file_and_never_touches_the_original(tmp_path):
    rows = [story(i) for i in range(12)] + [story(2), story(4)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    original = path.read_bytes()
    report = check_file(path)
    assert report.duplicates["removed_by_dedupe"] == 2
    cleaned = dedupe_file(report)
    assert cleaned == tmp_path / "d.dedup.jsonl"
    assert path.read_bytes() == original
    assert cleaned.read_bytes().count(b"\n") == 12
    # No duplicate is left; story() examples carry no system turn, which stays a warning.
    assert check_file(cleaned).counts_by_category == {"missing_system_message": 12}


def test_add_with_dedupe_adds_the_cleaned_file(tmp_path):
    rows = [story(i) for i in range(12)] + [story(2), story(4), story(6)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    dataset, created = add_dataset(path, dedupe=True, val_fraction=0.25)
    assert created and dataset.n_examples == 12
    assert dataset.source_path.endswith("d.dedup.jsonl")
    examples = load_examples(dataset, "train") + load_examples(dataset, "validation")
    assert len({e["messages"][0]["content"] for e in examples}) == 12
    assert dataset.report["duplicates"]["leakage"]["count"] == 0


def test_labels_repeat_without_being_duplicates(tmp_path):
    rows = [chat(i, reply=("yes", "no")[i % 2]) for i in range(20)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert "duplicate_example" not in report.counts_by_category
    assert "near_duplicate_example" not in report.counts_by_category
