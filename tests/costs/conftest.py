"""Datasets for the cost tests, built as intake stores them: a Dataset row, its train.jsonl
in chat form and exact per-example token counts (o200k_base, the data-prep recipe's
accounting) as TokenCount rows."""

from __future__ import annotations

import hashlib
import json
from array import array
from pathlib import Path

import pytest

from app.database import get_engine
from db.engine import write_session
from db.models import Dataset, TokenCount

LABELS = ["billing", "bug", "feature", "account"]


def chat_examples(n: int, *, labels: list[str] | None = LABELS, seed: int = 0) -> list[dict]:
    """``n`` support-ticket routing examples (a label reply), or free-form replies."""
    out = []
    for i in range(n):
        text = f"Ticket {seed}-{i}: my invoice for order {i * 7} shows a charge I do not recognise."
        reply = (
            labels[i % len(labels)]
            if labels
            else f"Summary {i}: the customer disputes a charge of ${i}."
        )
        out.append(
            {
                "messages": [
                    {"role": "system", "content": "Route the ticket to one team."},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": reply},
                ]
            }
        )
    return out


def recipe_tokens(example: dict) -> int:
    """The data-prep recipe's count: 3 per message + the encoded length of each value (role
    and content) + 3 for the reply priming."""
    from app.tokens import get_encoding

    enc = get_encoding("o200k_base")
    return (
        sum(
            3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"]))
            for m in example["messages"]
        )
        + 3
    )


def store_dataset(
    home: Path,
    name: str,
    examples: list[dict] | None = None,
    *,
    counts: list[int] | None = None,
    extra_counts: dict[str, list[int]] | None = None,
) -> Dataset:
    """Store a dataset the way intake does. ``counts`` overrides the measured counts (to
    test formulas on chosen numbers); the train.jsonl still holds ``examples``."""
    examples = examples if examples is not None else chat_examples(40)
    counts = counts if counts is not None else [recipe_tokens(e) for e in examples]
    body = "".join(json.dumps(e) + "\n" for e in examples)
    digest = hashlib.sha256(
        (name + body + str(counts[:10]) + str(len(counts))).encode()
    ).hexdigest()
    # Intake's layout: datasets/<content hash>/ under the storage root (the home here).
    data_dir = home / "datasets" / digest
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train.jsonl").write_text(body)
    (data_dir / "validation.jsonl").write_text("")
    with write_session(get_engine()) as s:
        ds = Dataset(
            name=name,
            content_hash=digest,
            format="chat",
            source_path=f"/data/{name}.jsonl",
            n_examples=len(counts),
            n_train=len(counts),
            n_validation=0,
            val_fraction=0.0,
            split_seed=0,
            verdict="ok",
            data_dir=f"datasets/{digest}",
            stats={"tokens": {"total": int(sum(counts))}},
        )
        s.add(ds)
        s.flush()
        for tokenizer, values in {"tiktoken:o200k_base": counts, **(extra_counts or {})}.items():
            packed = array("I", values)
            s.add(
                TokenCount(
                    dataset_id=ds.id,
                    tokenizer=tokenizer,
                    split="train",
                    n=len(values),
                    total=int(sum(values)),
                    counts=packed.tobytes(),
                )
            )
    return ds


@pytest.fixture
def make_dataset(ftm_home: Path):
    def make(name: str = "tickets", examples=None, **kw) -> Dataset:
        return store_dataset(ftm_home, name, examples, **kw)

    return make
