"""Shared set-up for end-to-end tests on the sandbox emulator: a routing dataset, a
corrupted copy of it (labels rotated), and jobs trained on both through the real launch
use-case and the real OpenAI provider over HTTP."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from app.datasets.store import add_dataset
from app.jobs.actions import refresh_job
from app.jobs.launch import launch_job

BASE = "gpt-4o-mini-2024-07-18"
LABELS = {
    "billing": ["invoice", "charge", "refund", "payment", "card", "bill"],
    "technical": ["crash", "error", "bug", "login", "install", "slow"],
    "account": ["password", "email", "profile", "username", "delete", "settings"],
    "shipping": ["parcel", "delivery", "tracking", "courier", "package", "arrived"],
}
ROTATED = {
    "billing": "technical",
    "technical": "account",
    "account": "shipping",
    "shipping": "billing",
}
SYSTEM = "Route the support ticket to one team: billing, technical, account or shipping."


def ticket_rows(n: int = 80, seed: int = 3, corrupt: bool = False) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    labels = sorted(LABELS)
    for i in range(n):
        label = labels[i % len(labels)]
        a, b = rng.sample(LABELS[label], 2)
        text = f"ticket {i}: my {a} has a problem with the {b}, please help"
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": ROTATED[label] if corrupt else label},
                ]
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def add_ticket_datasets(tmp_path: Path):
    good, _ = add_dataset(
        write_jsonl(tmp_path / "tickets.jsonl", ticket_rows()),
        name="tickets",
        val_fraction=0.25,
        seed=1,
    )
    bad, _ = add_dataset(
        write_jsonl(tmp_path / "tickets-rotated.jsonl", ticket_rows(corrupt=True)),
        name="tickets-rotated",
        val_fraction=0.25,
        seed=1,
    )
    return good, bad


def train(engine, dataset_name: str, suffix: str, timeout_s: float = 60.0):
    """Launch on the sandbox and refresh until the job ends; returns the finished row."""
    job = launch_job(
        "openai", dataset_name, BASE, suffix=suffix, hyperparameters={"n_epochs": 1}, engine=engine
    )
    deadline = time.monotonic() + timeout_s
    while True:
        refresh_job(job.id, engine=engine)
        from db.engine import read_session
        from db.models import Job

        with read_session(engine) as session:
            row = session.get(Job, job.id)
        if row.status in ("succeeded", "failed", "cancelled"):
            assert row.status == "succeeded", row.error
            return row
        assert time.monotonic() < deadline, f"job {row.id} still {row.status}"
        time.sleep(0.05)
