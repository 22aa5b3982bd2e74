"""Aliases per task (``production``, ``staging``...) and their history.

Every change of an alias is a row in ``promotions`` (who, when, why, the eval that
justified it, the gate results, whether they were overridden); ``aliases`` points at the
current row. A change is one write transaction: the new history row and the pointer move
together or not at all.

``previous_id`` of a promotion is the holder a rollback returns to. A rollback row carries
on the chain (its ``previous_id`` is that of the row it restored), so repeated rollbacks
walk back through the history instead of flip-flopping between two models.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from app.promotion.gates import GateReport, check_gates
from app.promotion.targets import ModelTarget, model_kind_of, reference_base
from db.engine import read_session, serialize_writers, write_session
from db.models import Alias, EvalRun, Promotion, utcnow


def promoter_name() -> str:
    """Who a promotion is recorded as: the configured name (``FTM_USER``, or ``user`` in
    config.toml), else the OS user (getpass: $LOGNAME, $USER..., then the password
    database), so a history row never says "unknown" on a machine that knows better."""
    import getpass
    import os

    from app.settings import get_settings

    configured = (get_settings().user or "").strip()
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


class PromotionError(RuntimeError):
    """The alias could not change (unknown alias, no history to roll back to...)."""


class GateRefused(PromotionError):
    """The gates failed and no override was given."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        lines = [f"  {r.name}: {r.detail}" for r in report.failed]
        super().__init__(
            "promotion refused, gate(s) failed:\n"
            + "\n".join(lines)
            + '\n  (to promote anyway: --override --why "...", recorded as an override)'
        )


@dataclass(frozen=True)
class Holder:
    """Who holds an alias now."""

    alias: Alias
    promotion: Promotion


def current(engine: Engine, task: str, alias: str) -> Holder | None:
    with read_session(engine) as session:
        row = session.exec(select(Alias).where(Alias.task == task, Alias.alias == alias)).first()
        if row is None:
            return None
        return Holder(row, session.get(Promotion, row.promotion_id))


def holders(engine: Engine, task: str | None = None) -> list[Holder]:
    """Every alias (of one task, or all), with its current promotion."""
    with read_session(engine) as session:
        query = select(Alias).order_by(Alias.task, Alias.alias)
        if task:
            query = query.where(Alias.task == task)
        return [Holder(a, session.get(Promotion, a.promotion_id)) for a in session.exec(query)]


def history(engine: Engine, task: str, alias: str | None = None) -> list[Promotion]:
    """Every change of the task's aliases, newest first."""
    with read_session(engine) as session:
        query = select(Promotion).where(Promotion.task == task)
        if alias:
            query = query.where(Promotion.alias == alias)
        return list(session.exec(query.order_by(Promotion.id.desc())))


def target_of_run(engine: Engine, run_id: int) -> tuple[EvalRun, ModelTarget]:
    """The model an eval run evaluated, as an alias target."""
    with read_session(engine) as session:
        run = session.get(EvalRun, run_id)
    if run is None:
        raise PromotionError(f"no eval run with id {run_id}; list them with: ftm compare --task T")
    if run.candidate_kind not in ("fine_tuned", "checkpoint"):
        raise PromotionError(
            f"eval run {run_id} is the {run.candidate_kind.replace('_', '-')} baseline of "
            f"{run.model}, not a trained model; promote a fine-tuned model's eval run"
        )
    candidate = (run.config or {}).get("candidate") or {}
    target = ModelTarget(
        provider=run.provider,
        model=run.model,
        model_kind=model_kind_of(run.provider, run.model),
        base_model=reference_base(run.provider, run.model, candidate.get("base_model")),
        job_id=run.job_id,
    )
    return run, target


def _write_change(
    engine: Engine,
    *,
    task: str,
    alias: str,
    action: str,
    target: ModelTarget,
    who: str,
    why: str | None,
    eval_run_id: int | None,
    gates: dict | None,
    overridden: bool,
) -> Promotion:
    """Insert the history row and move the alias, in one transaction."""
    with write_session(engine) as session:
        # Two promotions at once: the second reads what the first wrote (one history).
        serialize_writers(session, f"alias {task}/{alias}")
        pointer = session.exec(
            select(Alias).where(Alias.task == task, Alias.alias == alias)
        ).first()
        held = session.get(Promotion, pointer.promotion_id) if pointer else None
        row = Promotion(
            task=task,
            alias=alias,
            action=action,
            provider=target.provider,
            model=target.model,
            model_kind=target.model_kind,
            base_model=target.base_model,
            job_id=target.job_id,
            eval_run_id=eval_run_id,
            previous_id=held.id if held else None,
            who=who,
            why=why,
            gates=gates,
            overridden=overridden,
        )
        session.add(row)
        session.flush()
        if pointer is None:
            pointer = Alias(task=task, alias=alias, promotion_id=row.id)
        else:
            pointer.promotion_id = row.id
            pointer.updated_at = utcnow()
        session.add(pointer)
    return row


def promote(
    engine: Engine,
    *,
    task: str,
    alias: str,
    run_id: int,
    who: str | None = None,
    why: str | None = None,
    override: bool = False,
    target: ModelTarget | None = None,
    extra: dict | None = None,
) -> tuple[Promotion, GateReport]:
    """Point ``alias`` of ``task`` at the model eval run ``run_id`` evaluated, if the
    task's gates pass (or ``override`` with a reason). ``target`` replaces the run's model
    (a merged copy of the evaluated adapter, for instance); ``who`` defaults to
    `promoter_name`.

    Raises:
        GateRefused: a gate failed and there was no override.
        PromotionError: the run is unusable, or an override has no reason.
    """
    run, run_target = target_of_run(engine, run_id)
    if run.task != task:
        raise PromotionError(f"eval run {run_id} is for task {run.task!r}, not {task!r}")
    report = check_gates(engine, run_id)
    if not report.passed and not override:
        raise GateRefused(report)
    if override and not (why and why.strip()):
        raise PromotionError('an override must say why: --override --why "..."')
    gates = {**report.to_dict(), **(extra or {})}
    row = _write_change(
        engine,
        task=task,
        alias=alias,
        action="promote",
        target=target or run_target,
        who=who or promoter_name(),
        why=why,
        eval_run_id=run_id,
        gates=gates,
        overridden=override and not report.passed,
    )
    return row, report


def rollback(
    engine: Engine, *, task: str, alias: str, who: str | None = None, why: str | None = None
) -> Promotion:
    """Return ``alias`` to the holder before the current one (read and written in one
    transaction, so a concurrent promotion cannot slip in between)."""
    with write_session(engine) as session:
        pointer = session.exec(
            select(Alias).where(Alias.task == task, Alias.alias == alias)
        ).first()
        if pointer is None:
            raise PromotionError(f"task {task!r} has no alias {alias!r}; nothing to roll back")
        held = session.get(Promotion, pointer.promotion_id)
        if held.previous_id is None:
            raise PromotionError(
                f"{task}/{alias} has had only one holder ({held.model}); there is no earlier "
                "one to roll back to"
            )
        restored = session.get(Promotion, held.previous_id)
        note = f"rollback from #{held.id} ({held.model}) to #{restored.id}"
        row = Promotion(
            task=task,
            alias=alias,
            action="rollback",
            provider=restored.provider,
            model=restored.model,
            model_kind=restored.model_kind,
            base_model=restored.base_model,
            job_id=restored.job_id,
            eval_run_id=restored.eval_run_id,
            previous_id=restored.previous_id,
            who=who or promoter_name(),
            why=f"{why} [{note}]" if why else note,
            gates=restored.gates,
            overridden=False,
        )
        session.add(row)
        session.flush()
        pointer.promotion_id = row.id
        pointer.updated_at = utcnow()
        session.add(pointer)
    return row
