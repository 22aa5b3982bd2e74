"""Reading a job's JSONL into the forms trl trains on.

Chat examples (OpenAI format, ``{"messages": [...]}``) become trl conversational rows;
preference examples (OpenAI DPO format: ``input.messages``, ``preferred_output``,
``non_preferred_output``) become trl's ``prompt`` / ``chosen`` / ``rejected``. Only role and
text content are kept (OpenAI's ``weight``, ``name``, tool fields are dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A line of a job's data file that cannot be trained on."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _messages(raw: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: expected a non-empty list of messages")
    out = []
    for m in raw:
        if not isinstance(m, dict) or "role" not in m:
            raise DataError(f"{where}: every message needs a role and content")
        out.append({"role": str(m["role"]), "content": _text(m.get("content"))})
    return out


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc})") from None
    return rows


def is_preference(row: dict) -> bool:
    return "preferred_output" in row or "chosen" in row


def chat_rows(path: str | Path) -> list[dict]:
    """``{"messages": [...]}`` rows for SFT."""
    rows = []
    for n, row in enumerate(read_jsonl(path), 1):
        if is_preference(row):
            raise DataError(
                f"{path}:{n}: a preference example; train it with method dpo, not supervised"
            )
        rows.append({"messages": _messages(row.get("messages"), f"{path}:{n}")})
    return rows


def as_prompt_completion(rows: list[dict]) -> list[dict]:
    """Split each conversation before its last assistant turn: the completion-only fallback
    for chat templates without ``{% generation %}`` markers (only that turn is trained)."""
    out = []
    for i, row in enumerate(rows, 1):
        msgs = row["messages"]
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"example {i}: the last message must be the assistant's")
        out.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    return out


def preference_rows(path: str | Path) -> list[dict]:
    """``{"prompt", "chosen", "rejected"}`` conversational rows for DPO."""
    rows = []
    for n, row in enumerate(read_jsonl(path), 1):
        where = f"{path}:{n}"
        if "preferred_output" in row:
            prompt = _messages((row.get("input") or {}).get("messages"), where)
            chosen = _messages(row.get("preferred_output"), where)
            rejected = _messages(row.get("non_preferred_output"), where)
        elif "chosen" in row:
            prompt = _messages(row.get("prompt"), where)
            chosen = _messages(row.get("chosen"), where)
            rejected = _messages(row.get("rejected"), where)
        else:
            raise DataError(
                f"{where}: not a preference example (needs input/preferred_output/"
                "non_preferred_output); use a lora, qlora or full method for chat data"
            )
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows
