"""An optional LLM judge: any configured provider's model grades each answer against the
reference answer, under a spending cap. When the cap is reached the judge refuses further
calls and the run stops (stored as ``stopped``, with what was scored so far).

A judge whose price is unknown cannot keep a cap, so it is refused up front.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from app.evaluation.cache import GenerationSettings
from app.evaluation.pricing import request_cost, token_price
from providers.base import Provider
from providers.types import ChatMessage

JUDGE_SYSTEM = (
    "You grade answers. Given a question, a reference answer and a candidate answer, reply "
    "with exactly one word: PASS if the candidate answer means the same as the reference "
    "answer, FAIL otherwise."
)


class JudgeError(ValueError):
    """A judge that cannot be used as configured."""


class JudgeBudgetExhausted(Exception):
    """The spending cap is reached: no more judge calls."""


@dataclass
class Judge:
    provider: Provider
    model: str
    max_spend_usd: float
    engine: Engine
    spent_usd: float = 0.0
    calls: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: dict, provider: Provider | None, engine: Engine) -> Judge:
        if provider is None:
            raise JudgeError("the judge's provider is not configured")
        cap = config.get("max_spend_usd")
        if cap is None or float(cap) <= 0:
            raise JudgeError("an LLM judge needs a spending cap > 0 (--judge-max-spend USD)")
        if token_price(provider.name, config["model"]) is None:
            raise JudgeError(
                f"no price for judge model {config['model']!r} on {provider.name} in the price "
                "catalog, so its spending cap cannot be kept; add it to your prices file"
            )
        return cls(
            provider=provider, model=config["model"], max_spend_usd=float(cap), engine=engine
        )

    def score(self, question: str, expected: str | None, output: str) -> float:
        from app.evaluation.runner import complete_cached

        with self._lock:
            if self.spent_usd >= self.max_spend_usd:
                raise JudgeBudgetExhausted()
        messages = [
            ChatMessage("system", JUDGE_SYSTEM),
            ChatMessage(
                "user",
                f"Question:\n{question}\n\nReference answer:\n{expected or ''}\n\n"
                f"Candidate answer:\n{output}",
            ),
        ]
        answer = complete_cached(
            self.engine,
            self.provider,
            self.model,
            messages,
            GenerationSettings(max_tokens=4, temperature=0.0),
        )
        cost = (
            0.0
            if answer.cached
            else (
                request_cost(
                    self.provider.name, self.model, answer.prompt_tokens, answer.completion_tokens
                )
                or 0.0
            )
        )
        with self._lock:
            self.spent_usd += cost
            self.calls += 0 if answer.cached else 1
        return float(answer.output.strip().upper().startswith("PASS"))

    def report(self) -> dict:
        return {
            "provider": self.provider.name,
            "model": self.model,
            "max_spend_usd": self.max_spend_usd,
            "spent_usd": self.spent_usd,
            "calls": self.calls,
        }
