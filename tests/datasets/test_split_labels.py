"""Deterministic, stratified held-out split; label balance."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from app.datasets.check import check_file
from app.datasets.labels import categorical_labels
from app.datasets.split import split_indices
from tests.datasets.helpers import chat, write_jsonl

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_split_is_deterministic_and_seeded():
    a = split_indices(1000, 0.1, seed=7)
    assert np.array_equal(a, split_indices(1000, 0.1, seed=7))
    assert not np.array_equal(a, split_indices(1000, 0.1, seed=8))
    assert a.size == 100 and np.all(np.diff(a) > 0)


def test_split_edges():
    assert split_indices(1, 0.5, 0).size == 0
    assert split_indices(50, 0.0, 0).size == 0
    assert split_indices(10, 0.01, 0).size == 1  # at least one held out
    with pytest.raises(ValueError):
        split_indices(10, 1.0, 0)


def test_stratified_split_keeps_label_proportions():
    strata = np.array([0] * 900 + [1] * 90 + [2] * 10)
    val = split_indices(1000, 0.1, seed=3, strata=strata)
    assert Counter(strata[val].tolist()) == {0: 90, 1: 9, 2: 1}


def test_check_reports_labels_and_stratifies(tmp_path):
    rows = [chat(i, reply=("billing", "bug", "account")[i % 3]) for i in range(60)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows), val_fraction=0.2, seed=5)
    assert report.labels == {"billing": 20, "bug": 20, "account": 20}
    assert report.split["stratified"] is True
    val = report.arrays.val_indices
    assert Counter(report.arrays.label_ids[val].tolist()) == {0: 4, 1: 4, 2: 4}
    again = check_file(write_jsonl(tmp_path / "d.jsonl", rows), val_fraction=0.2, seed=5)
    assert np.array_equal(again.arrays.val_indices, val)


def test_heavy_imbalance_is_a_warning(tmp_path):
    rows = [chat(i, reply="spam" if i < 3 else "ham") for i in range(60)]
    report = check_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert report.labels == {"ham": 57, "spam": 3}
    assert report.counts_by_category == {"label_imbalance": 1}
    assert "'ham'" in report.problems[0].message and "19.0x" in report.problems[0].message
    assert report.verdict == "warnings"


def test_free_text_replies_are_not_labels(tmp_path):
    report = check_file(write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(30)]))
    assert report.labels is None and report.split["stratified"] is False


def test_categorical_labels():
    assert categorical_labels(
        [chat(i, reply=" yes ") for i in range(4)] + [chat(9, reply="no")]
    ) == ["yes"] * 4 + ["no"]
    assert categorical_labels([chat(i) for i in range(10)]) is None  # each reply differs
    assert (
        categorical_labels([chat(0, reply="a long reply that is surely not a class label")] * 4)
        is None
    )
