"""Candidates and their prompts.

Every candidate answers the same held-out examples; only the prompt differs:

- ``zero_shot``: the base model gets the example's prompt as is;
- ``few_shot``: the base model gets k solved examples, drawn with a fixed seed from the
  *training* half, as earlier turns of the conversation — the baseline a fine-tune must
  beat, since it is what the user would do without fine-tuning;
- ``fine_tuned`` / ``checkpoint``: the trained model gets the prompt as is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from providers.types import ChatMessage

KINDS = ("zero_shot", "few_shot", "fine_tuned", "checkpoint")


class CandidateError(ValueError):
    """A candidate that cannot be evaluated as asked."""


@dataclass(frozen=True)
class Candidate:
    """One model, prompted one way."""

    kind: str
    provider: str
    model: str
    k: int = 0
    seed: int = 0
    job_id: int | None = None
    base_model: str | None = None
    """For a fine-tuned model or checkpoint: the base it was trained from (the forgetting
    check compares against that base)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CandidateError(f"unknown candidate kind {self.kind!r}; use one of {KINDS}")
        if self.kind == "few_shot" and self.k < 1:
            raise CandidateError("a few-shot candidate needs k >= 1 examples")

    @property
    def label(self) -> str:
        if self.kind == "few_shot":
            return f"{self.model} ({self.k}-shot)"
        if self.kind == "zero_shot":
            return f"{self.model} (zero-shot)"
        return self.model

    @property
    def reference_base(self) -> str:
        """The base model whose general ability this candidate is compared with."""
        return self.base_model or self.model

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class EvalExample:
    """One held-out example: the prompt a model sees and the answer it should give."""

    index: int
    prompt: list[ChatMessage]
    expected: str | None
    meta: dict = field(default_factory=dict)


def _messages(example: dict) -> list[dict]:
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise CandidateError("an eval example has no 'messages' list (chat format expected)")
    return messages


def split_example(example: dict, index: int) -> EvalExample:
    """Prompt = every message before the last assistant message; expected = its content."""
    messages = _messages(example)
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        prompt, expected = messages, None
    else:
        prompt, expected = messages[:last], messages[last].get("content")
    return EvalExample(
        index=index,
        prompt=[ChatMessage(m["role"], m.get("content") or "") for m in prompt],
        expected=expected,
    )


def draw_shots(train_examples: Sequence[dict], k: int, seed: int) -> list[dict]:
    """k training examples, the same for the same (data, k, seed)."""
    if k > len(train_examples):
        raise CandidateError(
            f"asked for {k} few-shot examples but the training half has {len(train_examples)}; "
            "use a smaller --k"
        )
    return random.Random(seed).sample(list(train_examples), k)


def few_shot_prompt(prompt: Sequence[ChatMessage], shots: Sequence[dict]) -> list[ChatMessage]:
    """System messages of the example first, then each shot's turns (without its own
    system message), then the example's conversation."""
    system = [m for m in prompt if m.role == "system"]
    rest = [m for m in prompt if m.role != "system"]
    turns: list[ChatMessage] = []
    for shot in shots:
        for m in _messages(shot):
            if m.get("role") != "system":
                turns.append(ChatMessage(m["role"], m.get("content") or ""))
    return [*system, *turns, *rest]


def prompt_for(
    candidate: Candidate, example: EvalExample, shots: Sequence[dict] | None
) -> list[ChatMessage]:
    if candidate.kind == "few_shot":
        return few_shot_prompt(example.prompt, shots or [])
    return list(example.prompt)
