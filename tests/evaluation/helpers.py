"""A deterministic provider for unit tests of the runner and promotion mechanics only.
End-to-end tests use the real sandbox emulator and the local provider."""

from __future__ import annotations

import threading

from app.evaluation.general import general_items
from app.evaluation.runner import EvalConfig
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import Completion

# A right answer for each kind of general check (regex answers are anchored patterns).
GENERAL_ANSWERS = {
    "number": lambda a: a,
    "contains": lambda a: a,
    "exact": lambda a: a,
    "json": lambda a: a,
    "regex": lambda a: a.strip("^$").replace("\\.?", ""),
}


class EchoLabelProvider(Provider):
    """Counts its calls and can fail. Models: ``good`` answers the task (the first word of
    the last user turn) and the general set; ``forgetful`` answers the task but not the
    general set; ``base`` answers only the general set; anything else answers nothing."""

    name = "echo"
    display_name = "Echo (tests)"

    def __init__(self, fail_first: int = 0, retryable: bool = True) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.retryable = retryable
        self._lock = threading.Lock()

    def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise ProviderError("overloaded", retryable=self.retryable, retry_after_s=0)
        last = [m for m in messages if m.role == "user"][-1].content
        general = {item.prompt: item for item in general_items()}
        if last in general:
            item = general[last]
            right = model in ("good", "base")
            text = GENERAL_ANSWERS[item.check](item.answer) if right else "unknown"
        else:
            text = last.split()[0] if model in ("good", "forgetful") else "unknown"
        return Completion(text=text, prompt_tokens=10 * len(messages), completion_tokens=2)

    prepare = create = refresh = cancel = list_base_models = None  # unused here


EchoLabelProvider.__abstractmethods__ = frozenset()


def routing_examples(n=6):
    labels = ["billing", "technical", "account"]
    return [
        {
            "messages": [
                {"role": "system", "content": "Route the ticket."},
                {"role": "user", "content": f"{labels[i % 3]} ticket number {i}"},
                {"role": "assistant", "content": labels[i % 3]},
            ]
        }
        for i in range(n)
    ]


def routing_config(**kw) -> EvalConfig:
    kw.setdefault("concurrency", 4)
    return EvalConfig(
        task="routing", scorers=["label", "exact"], labels=["account", "billing", "technical"], **kw
    )
