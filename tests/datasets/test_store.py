"""Adding datasets: normalized files, content hash, idempotence, lookups, token counts."""

from __future__ import annotations

import hashlib
import json
from array import array

import pytest
from sqlmodel import select

from app.database import get_engine
from app.datasets.store import (
    DatasetRejected,
    add_dataset,
    get_dataset,
    load_examples,
    token_counts,
)
from app.tokens import get_encoding
from db.engine import read_session
from db.models import Dataset, TokenCount
from tests.datasets.helpers import chat, instruction, preference, write_jsonl


def test_add_stores_normalized_splits_stats_and_counts(tmp_path, ftm_home):
    path = write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(20)])
    dataset, created = add_dataset(path, val_fraction=0.25, seed=3)
    assert created and dataset.name == "tickets" and dataset.format == "chat"
    assert (dataset.n_examples, dataset.n_train, dataset.n_validation) == (20, 15, 5)
    # Stored relative to the storage root (the home by default), addressed by content.
    assert dataset.data_dir == f"datasets/{dataset.content_hash}"
    assert (ftm_home / dataset.data_dir / "train.jsonl").is_file()
    train, val = load_examples(dataset, "train"), load_examples(dataset, "validation")
    assert len(train) == 15 and len(val) == 5
    # The validation indices point into the normalized examples in file order.
    assert [e["messages"][1]["content"] for e in val] == [
        chat(i)["messages"][1]["content"] for i in dataset.validation_indices
    ]
    # The content hash is the sha256 of the normalized examples, in order.
    canonical = b"".join(
        json.dumps(chat(i), sort_keys=True, separators=(",", ":")).encode() + b"\n"
        for i in range(20)
    )
    assert dataset.content_hash == hashlib.sha256(canonical).hexdigest()
    assert dataset.stats["tokens"]["total"] == dataset.report["tokens"]["total"]
    with read_session(get_engine()) as session:
        rows = session.exec(select(TokenCount).where(TokenCount.dataset_id == dataset.id)).all()
        assert {(r.tokenizer, r.split, r.n) for r in rows} == {
            ("tiktoken:o200k_base", "train", 15),
            ("tiktoken:o200k_base", "validation", 5),
        }
        assert sum(r.total for r in rows) == dataset.stats["tokens"]["total"]


def test_adding_the_same_content_twice_is_idempotent(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(12)])
    first, created = add_dataset(path)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes().replace(b'", "', b'",   "'))  # same content, other spacing
    again, created_again = add_dataset(copy, name="other", seed=9)
    assert created and not created_again and again.id == first.id
    with read_session(get_engine()) as session:
        assert len(session.exec(select(Dataset)).all()) == 1


def test_instruction_is_stored_as_chat_and_preference_as_preference(tmp_path):
    ins, _ = add_dataset(write_jsonl(tmp_path / "i.jsonl", [instruction(i) for i in range(12)]))
    example = (load_examples(ins, "train") + load_examples(ins, "validation"))[0]
    assert ins.format == "instruction"
    assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
    assert example["messages"][0]["content"].startswith("Translate sentence")
    pref, _ = add_dataset(write_jsonl(tmp_path / "p.jsonl", [preference(i) for i in range(12)]))
    assert pref.format == "preference"
    assert set(load_examples(pref, "train")[0]) == {
        "input",
        "preferred_output",
        "non_preferred_output",
    }


def test_a_file_with_errors_is_refused(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", [chat(i) for i in range(12)], raw_lines={4: b"{oops"}
    )
    with pytest.raises(DatasetRejected, match=r"line 4: invalid_json") as refused:
        add_dataset(path)
    assert refused.value.report.verdict == "errors"
    with read_session(get_engine()) as session:
        assert session.exec(select(Dataset)).all() == []


def test_get_dataset_by_id_name_and_hash(tmp_path):
    a, _ = add_dataset(
        write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(12)]), name="alpha"
    )
    with read_session(get_engine()) as session:
        assert get_dataset(session, a.id).id == a.id
        assert get_dataset(session, str(a.id)).id == a.id
        assert get_dataset(session, "alpha").id == a.id
        assert get_dataset(session, a.content_hash[:10]).id == a.id
        with pytest.raises(LookupError, match="no dataset 'beta'; known datasets: alpha"):
            get_dataset(session, "beta")


def test_token_counts_are_computed_on_demand_for_another_tokenizer(tmp_path):
    dataset, _ = add_dataset(write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(12)]))
    cl100k = get_encoding("cl100k_base")
    with read_session(get_engine()) as session:
        stored = token_counts(session, dataset, "tiktoken:o200k_base", "train")
        assert (
            isinstance(stored, array) and stored.typecode == "I" and len(stored) == dataset.n_train
        )
        fresh = token_counts(session, dataset, "tiktoken:cl100k_base", "validation")
        expected = [
            3 + sum(3 + sum(len(cl100k.encode(v)) for v in m.values()) for m in e["messages"])
            for e in load_examples(dataset, "validation")
        ]
        assert list(fresh) == expected
    with read_session(get_engine()) as session:  # recorded, so a new session finds it
        row = session.exec(
            select(TokenCount).where(TokenCount.tokenizer == "tiktoken:cl100k_base")
        ).one()
        assert row.n == dataset.n_validation and row.total == sum(expected)
        assert list(token_counts(session, dataset, "gpt-3.5-turbo", "validation")) == expected


def test_two_processes_counting_the_same_split_at_once_both_get_the_counts(tmp_path, monkeypatch):
    """A teammate's estimate records the counts between this one's look and its write: the
    second write meets the unique row and keeps the first, instead of failing."""
    from app.datasets import store

    dataset, _ = add_dataset(write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(12)]))
    real_load = store.load_examples

    def teammate_counts_first(d, split):
        monkeypatch.setattr(store, "load_examples", real_load)  # the teammate's own load
        with read_session(get_engine()) as other:
            token_counts(other, d, "tiktoken:cl100k_base", split)
        return real_load(d, split)

    with read_session(get_engine()) as session:
        monkeypatch.setattr(store, "load_examples", teammate_counts_first)
        counts = token_counts(session, dataset, "tiktoken:cl100k_base", "validation")
    with read_session(get_engine()) as session:
        rows = session.exec(
            select(TokenCount).where(TokenCount.tokenizer == "tiktoken:cl100k_base")
        ).all()
    assert len(rows) == 1 and rows[0].n == dataset.n_validation == len(counts)
    assert rows[0].total == sum(counts)


def test_load_examples_rejects_an_unknown_split(tmp_path):
    dataset, _ = add_dataset(write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(12)]))
    with pytest.raises(ValueError, match="split must be one of train, validation"):
        load_examples(dataset, "test")
