"""Helpers for the TUI tests: deterministic data and waiting for workers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.worker import WorkerFailed

from app.database import get_engine
from db.engine import write_session
from db.models import Dataset, Job

FIXED_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FIXED_TODAY = date(2026, 11, 28)


async def settle(pilot: Pilot, rounds: int = 4) -> None:
    """Wait until the workers (and the workers they start) are done and messages handled.
    The in-app poller (group "poller") runs until the app ends: it is not waited for."""
    for _ in range(rounds):
        await pilot.pause()
        waited = [w for w in pilot.app.workers if w.group != "poller"]
        try:
            if waited:  # an empty list would mean every worker, the endless poller too
                await pilot.app.workers.wait_for_complete(waited)
        except WorkerFailed:
            pass  # reported by the app's handler; the tests look at what it showed
        await pilot.pause()


def chat_example(i: int) -> dict:
    label = ("billing", "bug", "account")[i % 3]
    return {
        "messages": [
            {"role": "system", "content": "Route the ticket to a queue."},
            {"role": "user", "content": f"Ticket {i}: my {label} issue number {i} needs help"},
            {"role": "assistant", "content": label},
        ]
    }


def add_dataset(home: Path, name: str = "tickets", *, n: int = 40, age_minutes: int = 0) -> int:
    """Add a chat dataset through the real intake (validation, token counts, split)."""
    from app.datasets.store import add_dataset as intake

    source = home / f"{name}.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "w") as f:
        for i in range(n):
            f.write(json.dumps(chat_example(i)) + "\n")
    dataset, _ = intake(source, name=name, val_fraction=0.2, seed=0)
    with write_session(get_engine()) as session:  # a fixed time for snapshots
        row = session.get(Dataset, dataset.id)
        row.created_at = FIXED_NOW - timedelta(minutes=age_minutes)
        session.add(row)
    return dataset.id


def add_dataset_row(name: str, *, verdict: str, n_train: int = 10, fmt: str = "chat") -> int:
    """A bare dataset row (for verdicts the intake would not store, e.g. errors)."""
    with write_session(get_engine()) as session:
        row = Dataset(
            name=name,
            content_hash=f"hash-{name}",
            format=fmt,
            source_path=f"/data/{name}.jsonl",
            created_at=FIXED_NOW - timedelta(days=1),
            n_examples=n_train + 2,
            n_train=n_train,
            n_validation=2,
            val_fraction=0.2,
            split_seed=0,
            verdict=verdict,
            data_dir=f"/data/{name}",
        )
        session.add(row)
        session.flush()
        return row.id


def add_jobs(n: int, *, provider: str = "openai", status: str = "succeeded") -> list[int]:
    """``n`` job rows with fixed times."""
    ids = []
    with write_session(get_engine()) as session:
        for i in range(n):
            job = Job(
                name=f"job-{i:03d}",
                provider=provider,
                base_model="gpt-4.1-mini-2025-04-14",
                method="supervised",
                status=status,
                remote_id=f"ftjob-{i:03d}",
                created_at=FIXED_NOW - timedelta(hours=i),
                updated_at=FIXED_NOW,
                estimated_cost_usd=1.25 + i,
                actual_cost_usd=1.2 + i if status == "succeeded" else None,
                train_loss=0.5 / (i + 1),
                simulated=True,
            )
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids
