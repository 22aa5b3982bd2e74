"""The promote use-case: gates, then (for a local adapter, on request) a merged copy, then
the atomic alias change. The merge runs before the write transaction (it takes seconds to
minutes; a transaction must stay short), and only when the gates already passed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from app.promotion.aliases import GateRefused, PromotionError, promote, target_of_run
from app.promotion.gates import GateReport, check_gates
from db.models import Promotion


def merged_dir_for(task: str, alias: str, run_id: int) -> Path:
    from app.settings import get_settings

    return get_settings().home / "models" / f"merged-{task}-{alias}-run{run_id}"


def promote_run(
    engine: Engine,
    *,
    task: str,
    alias: str,
    run_id: int,
    who: str | None = None,
    why: str | None = None,
    override: bool = False,
    merge: bool = False,
    on_event: Callable[[str], None] = lambda _: None,
) -> tuple[Promotion, GateReport]:
    """Promote eval run ``run_id``'s model; with ``merge``, a local adapter is merged into
    its base first and the merged directory is what the alias points at."""
    _, target = target_of_run(engine, run_id)
    extra = None
    if merge:
        if target.model_kind != "adapter":
            raise PromotionError(
                f"--merge needs a local adapter; {target.model} is a {target.model_kind} model"
            )
        report = check_gates(engine, run_id)
        if not report.passed and not override:
            raise GateRefused(report)
        out = merged_dir_for(task, alias, run_id)
        on_event(f"merging adapter {target.model} into its base -> {out}")
        from app.settings import get_settings
        from providers.local.merge import merge_adapter

        try:
            # The run names the adapter by its storage reference: merge this machine's copy.
            merge_adapter(get_settings().file_store.resolve(target.model) or target.model, out)
        except (OSError, ValueError) as exc:  # StorageMissing is an OSError
            raise PromotionError(f"merging {target.model} failed: {exc}") from None
        extra = {"merged_from": target.model}
        target = replace(target, model=str(out), model_kind="merged")
    return promote(
        engine,
        task=task,
        alias=alias,
        run_id=run_id,
        who=who,
        why=why,
        override=override,
        target=target,
        extra=extra,
    )
