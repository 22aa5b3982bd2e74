"""How an emulated base model answers a request for a new training example (the prompt of
`ftm data synth`), deterministically, so synthesis can be tested end to end.

The seed examples are the prompt's ``Example N: {json}`` lines. The new example is a
crossover of the first two seeds: the system message of seed 1, a user message made of
the first half of seed 1's user words followed by the second half of seed 2's, and as
the reply the label the prompt asks for (``Its final assistant reply must be exactly:``)
or else seed 1's reply. The same prompt always gives the same example; a prompt with no
parsable seed is not a synthesis request (None).
"""

from __future__ import annotations

import orjson

from app.datasets.synth_prompt import LABEL_LINE, SEED_PREFIX


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


def synth_reply(prompt: str) -> str | None:
    """The new example (as JSON text) for a synthesis prompt, or None for another prompt."""
    seeds = _seeds(prompt)
    if not seeds:
        return None
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
