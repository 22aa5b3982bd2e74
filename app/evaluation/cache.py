"""The inference cache: a completion is stored under a key made of the provider, the
model, the exact prompt and the generation settings, so rerunning an eval (or scoring the
same base model as two candidates) never pays for the same completion twice.

Only greedy completions (temperature 0) are cached: a sampled answer is not a fact about
the model to be reused. The exception is a sampled completion under a run seed (``ftm data
synth --seed``): there the caller wants the same seed to mean the same draw, so a rerun
reuses it and costs nothing; the seed is part of its key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from db.engine import read_session, write_session
from db.models import InferenceCache
from providers.types import ChatMessage


@dataclass(frozen=True)
class GenerationSettings:
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    """A run seed that makes a sampled completion reusable (see the module docstring)."""

    @property
    def cacheable(self) -> bool:
        return self.temperature == 0.0 or self.seed is not None


def cache_key(
    provider_key: str, model: str, messages: Sequence[ChatMessage], settings: GenerationSettings
) -> str:
    """sha256 over everything that determines a greedy completion."""
    payload = {
        "provider": provider_key,
        "model": model,
        "messages": [[m.role, m.content] for m in messages],
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
    }
    if settings.seed is not None:  # absent otherwise, so older keys stay valid
        payload["seed"] = settings.seed
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cache_get(engine: Engine, key: str) -> InferenceCache | None:
    with read_session(engine) as session:
        return session.get(InferenceCache, key)


def cache_put(
    engine: Engine,
    key: str,
    *,
    provider_key: str,
    model: str,
    output: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> None:
    """Store a completion; a concurrent writer that stored the same key first wins."""
    try:
        with write_session(engine) as session:
            if session.get(InferenceCache, key) is None:
                session.add(
                    InferenceCache(
                        key=key,
                        provider=provider_key,
                        model=model,
                        output=output,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                    )
                )
    except IntegrityError:
        pass  # same key, same greedy completion: nothing lost
