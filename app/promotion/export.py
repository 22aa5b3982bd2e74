"""What an application needs to call the model an alias points at: provider, model id or
path, base URL — as JSON or as an env file. Never an API key."""

from __future__ import annotations

import json
import shlex

from sqlalchemy import Engine

from app.promotion.aliases import PromotionError, current
from db.engine import read_session
from db.models import Job, Promotion


def endpoint_for(promotion: Promotion, engine: Engine) -> str | None:
    """The base URL to call a hosted model at, as its provider declares it
    (`Provider.model_endpoint`); None for a local model (loaded from disk), or when the
    provider is no longer installed.

    A model trained on the sandbox emulator only exists there, so its URL is the sandbox's.
    """
    if promotion.model_kind != "hosted":
        return None
    recorded = ((promotion.gates or {}).get("target") or {}).get("base_url")
    if recorded:
        return recorded
    from app.jobs.providers import UnknownProvider, make_provider

    simulated = False
    if promotion.job_id is not None:
        with read_session(engine) as session:
            job = session.get(Job, promotion.job_id)
            simulated = bool(job and job.simulated)
    try:
        provider = make_provider(promotion.provider, engine=engine)
    except UnknownProvider:
        return None
    try:
        return provider.model_endpoint(simulated=simulated)
    finally:
        provider.close()


def deployment_for(promotion: Promotion, engine: Engine) -> str | None:
    """The name an application passes as the model when its provider serves it from a
    deployment (`Provider.deployment_for`); None when it is called by its own id."""
    if promotion.model_kind != "hosted":
        return None
    from app.jobs.providers import UnknownProvider, make_provider

    try:
        provider = make_provider(promotion.provider, engine=engine)
    except UnknownProvider:
        return None
    try:
        return provider.deployment_for(promotion.model)
    finally:
        provider.close()


def _local_path(model: str) -> str:
    """A local model as a path of this machine (a stored reference such as
    ``jobs/<uid>/adapter`` resolved under this machine's storage root)."""
    from app.settings import get_settings

    return str(get_settings().file_store.where(model))


def export_record(engine: Engine, task: str, alias: str) -> dict:
    holder = current(engine, task, alias)
    if holder is None:
        raise PromotionError(
            f"task {task!r} has no alias {alias!r}; promote a model first: "
            f"ftm promote --task {task} --alias {alias} --run RUN_ID"
        )
    p = holder.promotion
    return {
        "task": task,
        "alias": alias,
        "provider": p.provider,
        "model_kind": p.model_kind,
        "model": p.model if p.model_kind == "hosted" else None,
        "path": _local_path(p.model) if p.model_kind != "hosted" else None,
        "base_model": p.base_model,
        "base_url": endpoint_for(p, engine),
        "deployment": deployment_for(p, engine),
        "promotion_id": p.id,
        "promoted_at": p.created_at.isoformat() if p.created_at else None,
    }


def render(record: dict, fmt: str) -> str:
    """``json`` or ``env`` (FTM_MODEL_* lines, shell-quoted, empty values left out)."""
    if fmt == "json":
        return json.dumps(record, indent=2) + "\n"
    if fmt == "env":
        keys = {
            "FTM_MODEL_PROVIDER": record["provider"],
            "FTM_MODEL_KIND": record["model_kind"],
            "FTM_MODEL": record["model"] or record["path"],
            "FTM_MODEL_BASE_URL": record["base_url"],
            "FTM_MODEL_DEPLOYMENT": record.get("deployment"),
            "FTM_MODEL_BASE": record["base_model"],
            "FTM_MODEL_TASK": record["task"],
            "FTM_MODEL_ALIAS": record["alias"],
        }
        return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in keys.items() if v)
    raise ValueError(f"unknown export format {fmt!r}; use json or env")
