"""The prompt `ftm data synth` sends a teacher model, and how its reply becomes an example.

The template shows a few seed examples from the source dataset's train split, one per
line as ``Example N: {json}``, and asks for one new example in the same JSON form. For a
categorical task it names the label the new example must have (that is how label quotas
are filled). The request number makes each prompt distinct, so a greedy teacher does not
repeat itself and the inference cache keys each request apart.

With a task description instead of a source dataset (``--task``) there are no seeds: the
prompt states the task on a ``Task: ...`` line and asks for one example of it. Either
prompt may name a topic (``--topic``) on a ``Topic: ...`` line, which is how topic quotas
are filled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from providers.types import ChatMessage

TEMPLATE_VERSION = "synth-v1"
TASK_TEMPLATE_VERSION = "synth-task-v1"
SEED_PREFIX = "Example "
LABEL_LINE = "Its final assistant reply must be exactly: "
TASK_LINE = "Task: "
TOPIC_LINE = "Topic: "

SYSTEM = (
    "You write training data for fine-tuning a chat model. You answer with exactly one "
    "JSON object and nothing else."
)

TEMPLATE = (
    "Here are examples from a fine-tuning dataset, one JSON object per line:\n"
    "{seeds}\n\n"
    "Write ONE new example for the same task, in the same JSON format "
    '({{"messages": [...]}}), different from every example above: a new user request '
    "that a real user could send, and the reply the assistant should give.\n"
    "{label_line}{topic_line}"
    "This is request {index}. Reply with the JSON object only."
)

TASK_TEMPLATE = (
    "A chat model is being fine-tuned for this task:\n"
    "{task_line}\n\n"
    "Write ONE training example for it as a JSON object "
    '({{"messages": [{{"role": "user", ...}}, {{"role": "assistant", ...}}]}}): a user '
    "request that a real user could send, and the reply the assistant should give.\n"
    "{label_line}{topic_line}"
    "This is request {index}. Reply with the JSON object only."
)


def _topic_line(topic: str | None) -> str:
    return f"{TOPIC_LINE}{topic} (the user request must be about this)\n" if topic else ""


def build_messages(
    seeds: Sequence[dict],
    index: int,
    label: str | None = None,
    topic: str | None = None,
    task: str | None = None,
) -> list[ChatMessage]:
    """The teacher's conversation for request ``index``: with these seed examples, or
    (``task``) with the task's description and no seeds."""
    label_line = f"{LABEL_LINE}{label}\n" if label is not None else ""
    if task is not None:
        user = TASK_TEMPLATE.format(
            task_line=TASK_LINE + " ".join(task.split()),
            label_line=label_line,
            topic_line=_topic_line(topic),
            index=index,
        )
    else:
        lines = "\n".join(
            f"{SEED_PREFIX}{i}: {orjson.dumps(seed).decode()}" for i, seed in enumerate(seeds, 1)
        )
        user = TEMPLATE.format(
            seeds=lines, label_line=label_line, topic_line=_topic_line(topic), index=index
        )
    return [ChatMessage("system", SYSTEM), ChatMessage("user", user)]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_example(reply: str) -> dict | None:
    """The example in a teacher's reply: a JSON object, bare or in a code fence, possibly
    with words around it. None when there is none."""
    text = reply.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = orjson.loads(text[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
