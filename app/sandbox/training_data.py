"""What the emulator learns from a training file: example count, billable tokens, and the
(prompt, reply) pairs a fine-tuned model answers from.

Token counts follow the public data-prep recipe (OpenAI's cookbook): 3 tokens per message,
plus the encoded length of each string value, plus 1 when ``name`` is present, plus 3 for
the reply priming. A DPO example counts its input with each of its two outputs, since
both sequences are trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.tokens import encoding_for_model

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


@dataclass(frozen=True)
class Example:
    """One training example as the emulated model remembers it."""

    prompt: str
    """The last user message before the trained reply."""
    reply: str
    """The trained assistant reply (the preferred output, for DPO)."""
    tokens: int
    """The example's token count by the recipe."""


def text_of(content: Any) -> str:
    """A message's text: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


def count_message_tokens(messages: Iterable[dict[str, Any]], model: str) -> int:
    """Tokens of a chat by the recipe, reply priming included."""
    encoding = encoding_for_model(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "weight":
                continue
            if isinstance(value, str):
                total += len(encoding.encode(value, disallowed_special=()))
            elif isinstance(value, list | dict):
                total += len(encoding.encode(json.dumps(value), disallowed_special=()))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def parse_example(row: Any, model: str) -> Example | None:
    """The remembered form of one JSONL row (supervised or DPO); None if it has no reply."""
    if not isinstance(row, dict):
        return None
    if "messages" in row and isinstance(row["messages"], list):
        messages = [m for m in row["messages"] if isinstance(m, dict)]
        # The trained reply is the last assistant message that is not weighted out.
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if message.get("role") == "assistant" and message.get("weight", 1) != 0:
                reply = text_of(message.get("content"))
                prompt = _last_user_text(messages[:index])
                return Example(prompt, reply, count_message_tokens(messages, model))
        return None
    if "input" in row and "preferred_output" in row:
        inputs = row["input"].get("messages", []) if isinstance(row["input"], dict) else []
        preferred = [m for m in row.get("preferred_output") or [] if isinstance(m, dict)]
        rejected = [m for m in row.get("non_preferred_output") or [] if isinstance(m, dict)]
        if not preferred:
            return None
        tokens = count_message_tokens([*inputs, *preferred], model) + count_message_tokens(
            [*inputs, *rejected], model
        )
        return Example(_last_user_text(inputs), text_of(preferred[-1].get("content")), tokens)
    return None


def load_examples(content: bytes, model: str) -> list[Example]:
    """Every example of a JSONL file that has a reply; unparseable lines are skipped
    (validation has already rejected a file with any)."""
    examples: list[Example] = []
    for line in content.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        example = parse_example(row, model)
        if example is not None:
            examples.append(example)
    return examples


def billable_tokens_per_epoch(examples: list[Example], example_token_limit: int) -> int:
    """Sum over examples of min(limit, tokens): longer examples are truncated."""
    return sum(min(example_token_limit, e.tokens) for e in examples)


def auto_epochs(n_examples: int) -> int:
    """The default epochs when ``n_epochs`` is auto (the service's documented rule)."""
    n = max(1, n_examples)
    epochs = 3
    if n * epochs < 100:
        epochs = min(25, 100 // n)
    elif n * epochs > 25_000:
        epochs = max(1, 25_000 // n)
    return epochs


def auto_batch_size(n_examples: int) -> int:
    """About 0.2% of the examples, between 1 and 256 (what the service is seen to pick)."""
    return max(1, min(256, math.ceil(n_examples * 0.002)))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    """Larger batches get a larger multiplier, as the service is seen to choose."""
    return 1.8 if batch_size <= 8 else 2.0


AUTO_DPO_BETA = 0.1
