"""Gateway log rows and deployment rows as `ftm serve` and `ftm deploy` write them,
inserted straight into the test's database (no server)."""

from __future__ import annotations

import itertools
from datetime import datetime

from app.database import get_engine
from db.engine import write_session
from db.models import Deployment, EvalRun, GatewayRequest

_ids = itertools.count()


def log_requests(
    times: list[datetime],
    *,
    task: str | None = "tickets",
    alias: str | None = "production",
    provider: str = "openai",
    model: str = "ft:gpt-4o-mini-2024-07-18:acme:tickets:1",
    route: str = "primary",
    status_code: int = 200,
    prompt_tokens: list[int] | int | None = 100,
    completion_tokens: list[int] | int | None = 10,
    cost_usd: float | None = 0.001,
    deployment_id: int | None = None,
) -> None:
    """One logged request at each of ``times``; a list of token sizes is cycled through."""

    def nth(value, i):
        return value[i % len(value)] if isinstance(value, list) else value

    with write_session(get_engine()) as s:
        for i, at in enumerate(times):
            s.add(
                GatewayRequest(
                    request_id=f"req-{next(_ids)}",
                    created_at=at,
                    task=task,
                    alias=alias,
                    provider=provider,
                    model=model,
                    deployment_id=deployment_id,
                    route=route,
                    latency_ms=12.0,
                    prompt_tokens=nth(prompt_tokens, i),
                    completion_tokens=nth(completion_tokens, i),
                    cost_usd=cost_usd,
                    status_code=status_code,
                    error_code=None if status_code < 400 else "upstream_error",
                )
            )


def add_deployment(**fields) -> int:
    row = Deployment(
        **{
            "provider": "together",
            "model": "acme/Llama-3.1-8B-tickets",
            "kind": "dedicated",
            "state": "running",
            **fields,
        }
    )
    with write_session(get_engine()) as s:
        s.add(row)
        s.flush()
        return row.id


def add_eval_run(task: str, dataset_id: int | None, **fields) -> int:
    """A finished eval run of ``task`` on a dataset: what ties the task to it."""
    row = EvalRun(
        **{
            "task": task,
            "dataset_id": dataset_id,
            "candidate_kind": "few_shot",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "status": "succeeded",
            **fields,
        }
    )
    with write_session(get_engine()) as s:
        s.add(row)
        s.flush()
        return row.id
