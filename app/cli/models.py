"""`ftm models list|show|export|plan|canary|shadow`, `ftm promote` (with `--rollback`), `ftm gates`, and
`ftm migrate`."""

from __future__ import annotations

import click

from app.cli.errors import UserError
from app.cli.quiet import library_output_to_log


def _console():
    from rich.console import Console

    return Console()


def _engine():
    from app.database import get_engine

    return get_engine()


def _sunset_note(p) -> str:
    from app.promotion.sunsets import sunset_of

    s = sunset_of(p.provider, p.model, p.base_model)
    return s.message if s else ""


def alias_options(command):
    """``--task TASK --alias ALIAS``: how `models show`, `models export`, `promote` and
    `migrate` all name an alias (README), with the same defaults and help."""
    command = click.option(
        "--alias",
        default="production",
        show_default=True,
        help="The alias (production, staging...).",
    )(command)
    return click.option(
        "--task",
        default=None,
        help="The task the alias belongs to (may be left out when one task has this alias).",
    )(command)


def _task_of(engine, task: str | None, alias: str) -> str:
    """``task``, or the one task that has ``alias`` when it was left out."""
    if task is not None:
        return task
    from app.promotion.aliases import holders

    tasks = sorted({h.alias.task for h in holders(engine) if h.alias.alias == alias})
    if len(tasks) != 1:
        where = f" ({', '.join(tasks)})" if tasks else ""
        raise UserError(
            f"alias {alias!r} exists in {len(tasks)} tasks{where}; name one with --task TASK"
        )
    return tasks[0]


@click.group("models")
def models() -> None:
    """Evaluated and promoted models: leaderboards, alias holders, export."""


@models.command("list")
@click.option("--task", default=None, help="Only this task.")
def models_list(task) -> None:
    """Leaderboard per task, with alias holders marked and sunset warnings."""
    from app.cli.evaluate import print_leaderboard
    from app.evaluation.compare import tasks
    from app.promotion.aliases import holders

    engine = _engine()
    names = [task] if task else tasks(engine)
    shown = False
    for name in names:
        print_leaderboard(name)
        shown = True
    providers: list[str] = []
    for h in holders(engine, task):
        note = _sunset_note(h.promotion)
        click.echo(
            f"{h.alias.task}/{h.alias.alias} -> {h.promotion.model} "
            f"[{h.promotion.provider}, {h.promotion.model_kind}]" + (f"  ! {note}" if note else "")
        )
        providers += [h.promotion.provider] if h.promotion.provider not in providers else []
        shown = True
    from app.gateway.policy import views

    for v in views(engine, task):
        if v.active:
            click.echo(f"{v.task}/{v.alias} traffic: {v.summary()}")
            shown = True
    from app.promotion.sunsets import job_creation_cutoff

    for name in providers:
        cutoff = job_creation_cutoff(name)
        if cutoff is not None:
            click.echo(f"{cutoff.message}: re-training there after that is impossible")
    if not shown:
        click.echo("No evaluations yet. Run: ftm eval --task TASK --dataset NAME ...")


@models.command("show")
@alias_options
def models_show(task, alias) -> None:
    """ALIAS's holder, the eval and gates behind it, its sunset, and its history."""
    from app.promotion.aliases import current, history

    engine = _engine()
    task = _task_of(engine, task, alias)
    holder = current(engine, task, alias)
    if holder is None:
        raise UserError(f"task {task!r} has no alias {alias!r}; see: ftm models list")
    p = holder.promotion
    click.echo(f"{task}/{alias}: {p.model}")
    click.echo(f"  provider {p.provider}, kind {p.model_kind}, base {p.base_model or '-'}")
    click.echo(
        f"  {p.action} #{p.id} by {p.who} at {p.created_at:%Y-%m-%d %H:%M} UTC"
        + (f": {p.why}" if p.why else "")
    )
    if p.eval_run_id:
        click.echo(
            f"  justified by eval run {p.eval_run_id}"
            + (" (gates OVERRIDDEN)" if p.overridden else "")
        )
    for g in (p.gates or {}).get("results", []):
        click.echo(f"    {'pass' if g['passed'] else 'FAIL'} {g['name']}: {g['detail']}")
    note = _sunset_note(p)
    if note:
        click.secho(f"  ! {note}", fg="yellow")
    from app.gateway.policy import view

    click.echo(f"  traffic: {view(engine, task, alias).summary()}")
    click.echo("history (newest first):")
    for h in history(engine, task, alias):
        flag = " [override]" if h.overridden else ""
        click.echo(
            f"  #{h.id} {h.created_at:%Y-%m-%d %H:%M} {h.action:<8} {h.model} by {h.who}"
            f"{flag}" + (f" — {h.why}" if h.why else "")
        )


@models.command("export")
@alias_options
@click.option(
    "--format", "fmt", type=click.Choice(["json", "env"]), default="json", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file instead of stdout.",
)
def models_export(task, alias, fmt, output) -> None:
    """What an application needs to call the ALIAS model: provider, model id or path,
    base URL (never an API key)."""
    from pathlib import Path

    from app.promotion.aliases import PromotionError
    from app.promotion.export import export_record, render

    engine = _engine()
    task = _task_of(engine, task, alias)
    try:
        text = render(export_record(engine, task, alias), fmt)
    except PromotionError as exc:
        raise UserError(str(exc)) from None
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@models.command("plan")
@click.option(
    "--horizon",
    "horizon_months",
    type=float,
    default=12.0,
    show_default=True,
    help="Months ahead to look.",
)
@click.option(
    "--requests-per-month",
    type=float,
    default=10_000,
    show_default=True,
    help="Traffic the replacement's cost is projected at.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def models_plan(horizon_months, requests_per_month, as_json) -> None:
    """Aliases whose model stops serving, or whose provider stops re-training, before the
    horizon: the deadline, the cheapest replacement passing the gates, its projected cost."""
    import json

    from app.promotion.plan import migration_plan, plan_lines

    if horizon_months <= 0 or requests_per_month <= 0:
        raise UserError("--horizon and --requests-per-month must be positive")
    plan = migration_plan(
        _engine(), horizon_months=horizon_months, requests_per_month=requests_per_month
    )
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))
        return
    for line in plan_lines(plan):
        click.echo(line)


@models.command("canary")
@click.argument("task")
@click.option(
    "--percent", type=float, default=None, help="Share of production's requests (0..100)."
)
@click.option(
    "--from",
    "from_alias",
    default="staging",
    show_default=True,
    help="The alias whose holder answers the canary share.",
)
@click.option("--off", is_flag=True, help="Stop the canary: production answers everything.")
def models_canary(task, percent, from_alias, off) -> None:
    """Send a share of TASK's production traffic through `ftm serve` to a staged
    candidate; takes effect at the next request."""
    from app.gateway.policy import PolicyError, set_canary
    from app.promotion.aliases import promoter_name

    if off == (percent is not None):
        raise UserError("give --percent P (0..100) or --off")
    try:
        v = set_canary(
            _engine(), task, 0 if off else percent, from_alias=from_alias, who=promoter_name()
        )
    except PolicyError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{v.task}/{v.alias} traffic: {v.summary()}")


@models.command("shadow")
@click.argument("task")
@click.option(
    "--to",
    "to_alias",
    default="staging",
    show_default=True,
    help="The alias whose holder gets a copy of each request (answer stored, not returned).",
)
@click.option("--off", is_flag=True, help="Stop shadowing.")
def models_shadow(task, to_alias, off) -> None:
    """Also send each of TASK's production requests through `ftm serve` to a candidate
    and store its answer (never returned); see the figures in `ftm compare`."""
    from app.gateway.policy import PolicyError, set_shadow
    from app.promotion.aliases import promoter_name

    try:
        v = set_shadow(_engine(), task, not off, to_alias=to_alias, who=promoter_name())
    except PolicyError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{v.task}/{v.alias} traffic: {v.summary()}")


@click.command("promote")
@alias_options
@click.option(
    "--run",
    "run_id",
    type=int,
    default=None,
    help="The eval run of the model to promote (see ftm compare).",
)
@click.option(
    "--model",
    default=None,
    help="Promote the newest eval run of this model instead of naming the run.",
)
@click.option("--why", default=None, help="Why (recorded).")
@click.option("--override", is_flag=True, help="Promote although a gate failed (needs --why).")
@click.option(
    "--merge",
    is_flag=True,
    help="Local adapter: merge it into its base and promote the merged model.",
)
@click.option("--rollback", is_flag=True, help="Return the alias to its previous holder.")
def promote(task, alias, run_id, model, why, override, merge, rollback) -> None:
    """Point ALIAS of TASK at a model after its gates pass, or --rollback."""
    from app.promotion import aliases

    engine = _engine()
    task = _task_of(engine, task, alias)
    who = aliases.promoter_name()
    if rollback:
        if run_id or model or override or merge:
            raise UserError("--rollback takes no --run/--model/--override/--merge")
        try:
            row = aliases.rollback(engine, task=task, alias=alias, who=who, why=why)
        except aliases.PromotionError as exc:
            raise UserError(str(exc)) from None
        click.echo(f"{task}/{alias} rolled back to {row.model} (#{row.id})")
        return
    if (run_id is None) == (model is None):
        raise UserError("name what to promote: --run RUN_ID or --model MODEL")
    if run_id is None:
        run_id = _newest_run_of(engine, task, model)
    from app.promotion.promote import promote_run

    try:
        row, report = promote_run(
            engine,
            task=task,
            alias=alias,
            run_id=run_id,
            who=who,
            why=why,
            override=override,
            merge=merge,
            on_event=click.echo,
        )
    except aliases.GateRefused as exc:
        raise UserError(str(exc)) from None
    except aliases.PromotionError as exc:
        raise UserError(str(exc)) from None
    for g in report.results:
        click.echo(f"  {'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}")
    flag = " (gates overridden)" if row.overridden else ""
    click.echo(f"{task}/{alias} -> {row.model} (#{row.id}, by {row.who}){flag}")
    note = _sunset_note(row)
    if note:
        click.secho(f"  ! {note}", fg="yellow")


def _newest_run_of(engine, task: str, model: str) -> int:
    from sqlmodel import select

    from app.settings import get_settings
    from db.engine import read_session
    from db.models import EvalRun

    model = get_settings().file_store.ref_for(model) or model  # a path under the root
    with read_session(engine) as session:
        run = session.exec(
            select(EvalRun)
            .where(
                EvalRun.task == task,
                EvalRun.model == model,
                EvalRun.status == "succeeded",
                EvalRun.candidate_kind.in_(["fine_tuned", "checkpoint"]),
            )
            .order_by(EvalRun.id.desc())
        ).first()
    if run is None:
        raise UserError(
            f"no finished eval of {model!r} for task {task!r}; evaluate it first: "
            f"ftm eval --task {task} --model {model} ..."
        )
    return run.id


@click.command("gates")
@click.option("--task", required=True)
@click.option(
    "--margin",
    type=float,
    default=None,
    help="Quality the candidate must beat the few-shot baseline by (0.05 = 5 pts).",
)
@click.option(
    "--max-general-drop",
    type=float,
    default=None,
    help="Largest allowed drop on the general-ability check.",
)
@click.option(
    "--max-breakeven",
    type=int,
    default=None,
    help="Must pay back its training cost within this many requests.",
)
@click.option("--no-breakeven", is_flag=True, help="Drop the break-even gate.")
def gates(task, margin, max_general_drop, max_breakeven, no_breakeven) -> None:
    """Show or change TASK's promotion gates."""
    from app.promotion.gates import get_policy, set_policy

    engine = _engine()
    if any(v is not None for v in (margin, max_general_drop, max_breakeven)) or no_breakeven:
        policy = set_policy(
            engine,
            task,
            min_margin_over_baseline=margin,
            max_general_drop=max_general_drop,
            max_breakeven_requests=max_breakeven,
            clear_breakeven=no_breakeven,
        )
    else:
        policy = get_policy(engine, task)
    click.echo(f"task {task} gates:")
    click.echo(f"  beat the few-shot baseline by  {policy.min_margin_over_baseline:+.3f}")
    click.echo(f"  max general-ability drop       {policy.max_general_drop:.3f}")
    be = policy.max_breakeven_requests
    click.echo(f"  pay back within                {'-' if be is None else f'{be:,} requests'}")


@click.command("migrate")
@alias_options
@click.option("--to", "to_provider", required=True, help="Provider to move to (e.g. local).")
@click.option(
    "--model",
    "base_model",
    required=True,
    help="Base model on the new provider (a local model path for --to local).",
)
@click.option(
    "--method",
    default=None,
    help="Training method there (local: lora, qlora, dora, ia3, prefix, full).",
)
@click.option("--epochs", type=int, default=None, help="Override the promoted job's epochs.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Override the promoted job's batch size (e.g. below the new provider's minimum).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider option for the new job (see ftm launch). Repeatable.",
)
@click.option("--why", default=None, help="Recorded with the promotion.")
@click.option("--no-promote", is_flag=True, help="Stop after the comparison.")
@click.option(
    "--timeout",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds to wait for the new job.",
)
def migrate(
    task,
    alias,
    to_provider,
    base_model,
    method,
    epochs,
    batch_size,
    options,
    why,
    no_promote,
    timeout,
) -> None:
    """Re-train ALIAS's model of TASK on another provider with the same dataset and
    settings, evaluate it against the promoted model on the same eval set, and promote it
    when it passes the gates — each step printed as it runs."""
    from app.promotion.migrate import MigrationError, MigrationRequest, migrate_alias

    parsed = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--option {item!r}: use KEY=VALUE")
        parsed[key] = value
    req = MigrationRequest(
        task=_task_of(_engine(), task, alias),
        alias=alias,
        to_provider=to_provider,
        base_model=base_model,
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        options=parsed,
        why=why,
        promote=not no_promote,
        timeout_s=timeout,
    )
    try:
        with library_output_to_log("migrate"):
            result = migrate_alias(_engine(), req, on_event=click.echo)
    except MigrationError as exc:
        raise UserError(str(exc)) from None
    if not result.promoted and not no_promote:
        raise click.exceptions.Exit(1)
