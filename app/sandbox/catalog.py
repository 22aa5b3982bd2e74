"""The base models the sandbox can fine-tune, as the real service listed them.

Aliases resolve to dated snapshots (a job reports the snapshot, as the API does). The
per-example token limits are the service's published ones; examples longer than the limit are
truncated (and billed at the limit).
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.openai.lifecycle import load_lifecycle

BASE_MODEL_CREATED = 1_721_172_741  # a fixed, plausible `created` for every base model


@dataclass(frozen=True)
class BaseModel:
    id: str
    """The dated snapshot."""
    example_token_limit: int
    methods: tuple[str, ...] = ("supervised", "dpo")
    shutdown_date: str | None = None
    """ISO date the model is retired, where announced (the OpenAI provider's declared
    lifecycle, so the sandbox and ftm agree)."""
    aliases: tuple[str, ...] = ()


def _retires(model_id: str) -> str | None:
    day = load_lifecycle().retirements.get(model_id)
    return day.isoformat() if day else None


BASE_MODELS: tuple[BaseModel, ...] = (
    BaseModel(
        "gpt-4o-mini-2024-07-18",
        65_536,
        shutdown_date=_retires("gpt-4o-mini-2024-07-18"),
        aliases=("gpt-4o-mini",),
    ),
    BaseModel(
        "gpt-4o-2024-08-06",
        65_536,
        shutdown_date=_retires("gpt-4o-2024-08-06"),
        aliases=("gpt-4o",),
    ),
    BaseModel(
        "gpt-4.1-2025-04-14",
        65_536,
        shutdown_date=_retires("gpt-4.1-2025-04-14"),
        aliases=("gpt-4.1",),
    ),
    BaseModel(
        "gpt-4.1-mini-2025-04-14",
        65_536,
        shutdown_date=_retires("gpt-4.1-mini-2025-04-14"),
        aliases=("gpt-4.1-mini",),
    ),
    BaseModel("gpt-4.1-nano-2025-04-14", 65_536, aliases=("gpt-4.1-nano",)),
    BaseModel("gpt-3.5-turbo-0125", 16_385, methods=("supervised",), aliases=("gpt-3.5-turbo",)),
    BaseModel("gpt-3.5-turbo-1106", 16_385, methods=("supervised",)),
)

_BY_NAME: dict[str, BaseModel] = {}
for _model in BASE_MODELS:
    _BY_NAME[_model.id] = _model
    for _alias in _model.aliases:
        _BY_NAME[_alias] = _model


def resolve_base_model(name: str) -> BaseModel | None:
    """The base model for a snapshot id or alias, or None if the sandbox has no such model."""
    return _BY_NAME.get(name)


def listed_model_ids() -> list[str]:
    """Every base model id `GET /models` lists: snapshots and their aliases."""
    ids: list[str] = []
    for model in BASE_MODELS:
        ids.append(model.id)
        ids.extend(model.aliases)
    return ids
