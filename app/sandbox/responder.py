"""How emulated models answer chat completions — deterministic, and documented so that
evaluations against the sandbox mean something.

**A fine-tuned model** (or one of its checkpoints) answers from its training examples:

1. *Exact recall*: if the last user message, normalized (Unicode NFKC, case-folded,
   whitespace collapsed), equals the prompt of a training example, it answers that
   example's assistant reply (the preferred output, for DPO). The first such example in
   the file wins.
2. *Nearest example*: otherwise it answers the reply of the example whose prompt has the
   highest token-overlap (Jaccard similarity of the sets of lowercase word tokens) with the
   last user message; ties go to the earlier example.
3. If nothing overlaps at all, it answers the most common reply in its training data.

A training example's prompt is the last user message before its trained reply (the last
assistant message not weighted 0). System messages and earlier turns of the request are
not consulted; a checkpoint answers like the finished model.

**A base model** has no training data, so:

- *Few-shot*: when the conversation holds earlier user -> assistant turns (in-context
  examples), it answers from those turns by rules 1 and 2, so few-shot baselines are
  meaningful; if no in-context prompt shares a word with the question, it answers as
  zero-shot.
- *Synthesis*: asked for a new training example in `ftm data synth`'s template, it
  answers one derived from the prompt's seed examples (`app.sandbox.synth_reply`).
- *Zero-shot*: otherwise it answers a fixed generic sentence, :data:`GENERIC_REPLY`
  (naming the model), which is never a trained label.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from app.sandbox.training_data import text_of

GENERIC_REPLY = (
    "I'm a general-purpose assistant ({model}, simulated by the ftm sandbox) and I have "
    "not been trained on this task, so I can only offer a general answer."
)

_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """The form prompts are compared in: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(normalize(text)))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two token sets (0 when both are empty)."""
    union = a | b
    return len(a & b) / len(union) if union else 0.0


@dataclass(frozen=True)
class Pair:
    prompt: str
    reply: str


class Memory:
    """(prompt, reply) pairs indexed for exact and nearest lookup."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        self.pairs = list(pairs)
        self._exact: dict[str, str] = {}
        for pair in self.pairs:
            self._exact.setdefault(normalize(pair.prompt), pair.reply)
        self._words = [word_set(p.prompt) for p in self.pairs]

    def answer(self, prompt: str, *, fallback_to_most_common: bool = True) -> str | None:
        """The reply for ``prompt`` by the rules in this module's docstring."""
        if not self.pairs:
            return None
        exact = self._exact.get(normalize(prompt))
        if exact is not None:
            return exact
        words = word_set(prompt)
        best_score, best_reply = 0.0, None
        for candidate_words, pair in zip(self._words, self.pairs, strict=True):
            score = similarity(words, candidate_words)
            if score > best_score:
                best_score, best_reply = score, pair.reply
        if best_reply is not None:
            return best_reply
        if fallback_to_most_common:
            counts = Counter(p.reply for p in self.pairs)
            top = max(counts.values())
            return next(p.reply for p in self.pairs if counts[p.reply] == top)
        return None


def in_context_pairs(messages: Sequence[dict]) -> list[Pair]:
    """Earlier user -> assistant turns of a conversation (its few-shot examples)."""
    pairs: list[Pair] = []
    last_user: str | None = None
    for message in messages[:-1]:
        role = message.get("role")
        if role == "user":
            last_user = text_of(message.get("content"))
        elif role == "assistant" and last_user is not None:
            pairs.append(Pair(last_user, text_of(message.get("content"))))
            last_user = None
    return pairs


def last_user_message(messages: Sequence[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def base_model_reply(model: str, messages: Sequence[dict]) -> str:
    """What a base (not fine-tuned) model answers."""
    from app.sandbox.synth_reply import synth_reply

    if (example := synth_reply(last_user_message(messages))) is not None:
        return example
    shots = in_context_pairs(messages)
    if shots:
        reply = Memory(shots).answer(last_user_message(messages), fallback_to_most_common=False)
        if reply is not None:
            return reply
    return GENERIC_REPLY.format(model=model)


def fine_tuned_reply(memory: Memory, model: str, messages: Sequence[dict]) -> str:
    """What a fine-tuned model answers: from its training examples."""
    reply = memory.answer(last_user_message(messages))
    return reply if reply is not None else GENERIC_REPLY.format(model=model)
