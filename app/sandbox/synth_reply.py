"""How an emulated base model answers a request for a new training example (the prompt of
`ftm data synth`), deterministically, so synthesis can be tested end to end.

The seed examples are the prompt's ``Example N: {json}`` lines. The new example is a
crossover of the first two seeds: the system message of seed 1, a user message made of
the first half of seed 1's user words followed by the second half of seed 2's, and as
the reply the label the prompt asks for (``Its final assistant reply must be exactly:``)
or else seed 1's reply. The same prompt always gives the same example; a prompt with no
parsable seed is not a synthesis request (None).

A prompt with a ``Task: ...`` line and no seeds (``--task``) gets a user request built
from word lists by a generator seeded with the whole prompt (so each request number
gives another request, and the same prompt the same one), about the prompt's topic when
it names one, and as the reply the label asked for or else a short answer.
"""

from __future__ import annotations

import hashlib
import random

import orjson

from app.datasets.synth_prompt import LABEL_LINE, SEED_PREFIX, TASK_LINE, TOPIC_LINE

_OPENERS = ["Hi,", "Hello,", "Quick question:", "Please help:", "Good morning,", "Hey there,"]
_ADJECTIVES = ["new", "old", "second", "common", "main", "spare", "latest", "broken"]
_NOUNS = [
    "order", "invoice", "router", "password", "laptop", "parcel", "account", "screen",
    "printer", "subscription", "refund", "charger", "profile", "receipt", "phone", "badge",
]  # fmt: skip
_VERBS = ["stopped", "failed", "vanished", "changed", "froze", "doubled", "broke", "reset"]
_WHEN = ["yesterday", "this morning", "last week", "on Monday", "twice today", "overnight"]
_ASKS = ["What should I do?", "Can you fix it?", "Is this expected?", "How do I sort it?"]


def _seeds(prompt: str) -> list[dict]:
    seeds = []
    for line in prompt.splitlines():
        head, sep, body = line.partition(": ")
        if not (sep and head.startswith(SEED_PREFIX) and head[len(SEED_PREFIX) :].isdigit()):
            continue
        try:
            seed = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if isinstance(seed, dict) and isinstance(seed.get("messages"), list):
            seeds.append(seed)
    return seeds


def _content(seed: dict, role: str) -> str | None:
    for message in seed["messages"]:
        if message.get("role") == role and isinstance(message.get("content"), str):
            return message["content"]
    return None


def _requested_label(prompt: str) -> str | None:
    for line in prompt.splitlines():
        if line.startswith(LABEL_LINE):
            return line[len(LABEL_LINE) :].strip()
    return None


def _line_value(prompt: str, prefix: str) -> str | None:
    for line in prompt.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def _task_example(prompt: str) -> str:
    """A plausible chat example for a task-description prompt, the same for the same one."""
    rng = random.Random(hashlib.sha256(prompt.encode()).digest())
    topic = _line_value(prompt, TOPIC_LINE)
    topic = topic.split(" (")[0] if topic else None
    sentences = [
        f"the {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} "
        f"{rng.choice(_WHEN)}"
        for _ in range(3)
    ]
    about = f" about {topic}" if topic else ""
    user = (
        f"{rng.choice(_OPENERS)} a question{about}: {'; '.join(sentences)}. "
        f"Reference {rng.randrange(10_000, 99_999)}. {rng.choice(_ASKS)}"
    )
    reply = _requested_label(prompt) or (
        f"Sorry about the {rng.choice(_NOUNS)}. Please restart it and reply with the "
        f"reference {rng.randrange(100, 999)} if it happens again."
    )
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return orjson.dumps({"messages": messages}).decode()


def synth_reply(prompt: str) -> str | None:
    """The new example (as JSON text) for a synthesis prompt, or None for another prompt."""
    seeds = _seeds(prompt)
    if not seeds:
        return _task_example(prompt) if _line_value(prompt, TASK_LINE) is not None else None
    first, second = seeds[0], seeds[1 % len(seeds)]
    words_a = (_content(first, "user") or "").split()
    words_b = (_content(second, "user") or "").split()
    user = " ".join(words_a[: len(words_a) // 2] + words_b[len(words_b) // 2 :])
    reply = _requested_label(prompt) or _content(first, "assistant") or ""
    messages = []
    if (system := _content(first, "system")) is not None:
        messages.append({"role": "system", "content": system})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return orjson.dumps({"messages": messages}).decode()
