"""Small builders for dataset tests: examples in each format and JSONL files."""

from __future__ import annotations

import json
from pathlib import Path


def chat(i: int, *, system: str = "You answer briefly.", reply: str | None = None) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": f"Question {i}: what is {i} plus {i * 7 % 13}? Explain with care.",
            },
            {
                "role": "assistant",
                "content": reply if reply is not None else f"It is {i + i * 7 % 13}, {i} words.",
            },
        ]
    }


def instruction(i: int) -> dict:
    return {
        "instruction": f"Translate sentence {i} to French",
        "input": f"I have {i} cats",
        "output": f"J'ai {i} chats",
    }


def preference(i: int) -> dict:
    return {
        "input": {"messages": [{"role": "user", "content": f"Say hello number {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"Hello {i}!"}],
        "non_preferred_output": [{"role": "assistant", "content": f"Go away {i}."}],
    }


def write_jsonl(path: Path, rows: list, *, raw_lines: dict[int, bytes] | None = None) -> Path:
    """Write rows (dicts or raw bytes) one per line; `raw_lines` replaces 1-based lines."""
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    for lineno, raw in (raw_lines or {}).items():
        lines[lineno - 1] = raw
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def lines_of(report, category: str) -> list[int]:
    return [p.line for p in report.problems if p.category == category]
