"""`ftm eval` (score a task's candidates on held-out data) and `ftm compare` (side by side,
and which examples flipped between two runs)."""

from __future__ import annotations

import json

import click

from app.cli.errors import UserError
from app.cli.quiet import library_output_to_log
from app.cli.tables import Column
from app.costs.money import usd


def _console():
    from rich.console import Console

    return Console()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pts"


def _usd(value: float | None) -> str:
    return usd(value)


def _requests(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _user_errors():
    """The expected failures of evaluation, as classes to catch."""
    from app.evaluation.candidates import CandidateError
    from app.evaluation.data import EvalDataError
    from app.evaluation.judge import JudgeError
    from app.evaluation.runner import EvalError
    from app.evaluation.scorers import ScorerError
    from app.jobs.weights import WeightsError
    from providers.errors import ProviderError

    return (
        CandidateError,
        EvalDataError,
        JudgeError,
        EvalError,
        ScorerError,
        WeightsError,
        ProviderError,
        LookupError,
    )


@click.command("eval")
@click.option("--task", default=None, help="Task name: runs and aliases are grouped by it.")
@click.option(
    "--dataset",
    default=None,
    help="Dataset name or id: its held-out split is the eval set, its training half "
    "gives the few-shot examples. Default with --job: the job's dataset.",
)
@click.option("--eval-dataset", default=None, help="Evaluate on another dataset instead.")
@click.option(
    "--split",
    default="validation",
    show_default=True,
    type=click.Choice(["validation", "train", "all"]),
    help="Split of the eval dataset.",
)
@click.option(
    "--provider",
    "provider_name",
    default=None,
    help="Provider of the base model and of --model (openai, local...). "
    "Default with --job: the job's provider.",
)
@click.option(
    "--base",
    "base_model",
    default=None,
    help="Base model (id, or a local model path) for the zero/few-shot baselines. "
    "Default with --job: the job's base model.",
)
@click.option("--zero-shot/--no-zero-shot", default=True, show_default=True)
@click.option(
    "--few-shot",
    "k",
    type=int,
    default=3,
    show_default=True,
    help="k examples in the baseline prompt (0: no few-shot baseline).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for drawing the shots.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A fine-tuned model to evaluate (ft: id, adapter or merged dir). Repeatable.",
)
@click.option(
    "--job", "job_ids", type=int, multiple=True, help="Evaluate a finished job's model. Repeatable."
)
@click.option("--checkpoints", is_flag=True, help="Also evaluate the jobs' checkpoints.")
@click.option(
    "--local-weights",
    is_flag=True,
    help="Evaluate the jobs' downloaded weights (ftm jobs download) on this machine, the "
    "baselines on the base they load onto.",
)
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    help="exact | label | json | json_schema:PATH | regex:PATTERN | plugin:NAME. "
    "Repeatable; default: label (categorical) or exact, plus json if all "
    "answers are JSON.",
)
@click.option("--no-general", is_flag=True, help="Skip the general-ability (forgetting) check.")
@click.option("--limit", type=int, default=None, help="Only the first N eval examples.")
@click.option("--concurrency", type=int, default=8, show_default=True)
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--judge-provider", default=None, help="Provider of an LLM judge (optional).")
@click.option("--judge-model", default=None, help="Model of the LLM judge.")
@click.option(
    "--judge-max-spend",
    type=float,
    default=None,
    help="Stop the run when the judge has spent this many USD.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs' summaries as JSON.")
@click.option(
    "--rerun",
    "rerun_id",
    type=int,
    default=None,
    metavar="RUN_ID",
    help="Run an earlier eval again exactly as stored in the database (cached: free).",
)
def eval_command(
    task,
    dataset,
    eval_dataset,
    split,
    provider_name,
    base_model,
    zero_shot,
    k,
    seed,
    models,
    job_ids,
    checkpoints,
    local_weights,
    scorers,
    no_general,
    limit,
    concurrency,
    max_tokens,
    judge_provider,
    judge_model,
    judge_max_spend,
    as_json,
    rerun_id,
) -> None:
    """Score every candidate of TASK the same way on held-out data: the base model
    zero-shot and with k examples (the baseline to beat), fine-tuned models, jobs and
    their checkpoints. Completions are cached: a rerun costs nothing."""
    from app.database import get_engine
    from app.evaluation.service import EvalRequest, evaluate

    if rerun_id is not None:
        _rerun(rerun_id, as_json)
        return
    if not (task and (dataset or job_ids)):
        raise UserError(
            "name the task and its data: --task NAME --dataset NAME, or --task NAME --job ID "
            "(or --rerun RUN_ID)"
        )
    judge = None
    if judge_provider or judge_model:
        if not (judge_provider and judge_model and judge_max_spend):
            raise UserError(
                "an LLM judge needs --judge-provider, --judge-model and "
                "--judge-max-spend USD (its spending cap)"
            )
        judge = {"provider": judge_provider, "model": judge_model, "max_spend_usd": judge_max_spend}
    req = EvalRequest(
        task=task,
        dataset=_id_or_name(dataset) if dataset else None,
        provider=provider_name,
        base_model=base_model,
        eval_dataset=_id_or_name(eval_dataset) if eval_dataset else None,
        split=split,
        zero_shot=zero_shot,
        few_shot=k,
        seed=seed,
        models=list(models),
        job_ids=list(job_ids),
        checkpoints=checkpoints,
        local_weights=local_weights,
        scorers=list(scorers) or None,
        general=not no_general,
        limit=limit,
        concurrency=concurrency,
        max_tokens=max_tokens,
        judge=judge,
    )
    say = (lambda _m: None) if as_json else (lambda m: click.echo(m, err=False))
    try:
        with library_output_to_log("eval"):
            runs = evaluate(req, engine=get_engine(), on_event=say)
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "run_id": r.id,
                        "model": r.model,
                        "kind": r.candidate_kind,
                        "status": r.status,
                        "summary": r.summary,
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
        return
    print_leaderboard(task, run_ids={r.id for r in runs})


def _rerun(run_id: int, as_json: bool) -> None:
    from app.database import get_engine
    from app.evaluation.runner import rerun_eval
    from app.evaluation.service import provider_cache
    from db.engine import read_session
    from db.models import EvalRun

    engine = get_engine()
    with read_session(engine) as session:
        old = session.get(EvalRun, run_id)
    if old is None:
        raise UserError(f"no eval run with id {run_id}; see: ftm compare --task TASK")
    providers = provider_cache()
    judge = (old.config or {}).get("judge")
    try:
        with library_output_to_log("eval"):
            run = rerun_eval(
                run_id,
                provider=providers(old.provider),
                engine=engine,
                judge_provider=providers(judge["provider"]) if judge else None,
            )
    except _user_errors() as exc:
        raise UserError(str(exc)) from None
    summary = run.summary or {}
    if as_json:
        click.echo(json.dumps({"run_id": run.id, "rerun_of": run_id, "summary": summary}, indent=2))
        return
    task = summary.get("task") or {}
    click.echo(
        f"run {run.id} (rerun of {run_id}, {run.model}): quality {_pct(task.get('quality'))}; "
        f"{summary.get('calls', 0)} provider calls, {summary.get('cached', 0)} cached"
    )


def _id_or_name(value: str) -> str | int:
    return int(value) if value.isdigit() else value


# The candidate, its quality and its cost stay at 80 columns; the candidate is cut in the
# middle, so both the model family and the distinguishing tail (":abc123", "(3-shot)")
# stay readable. Kind and provider go first: the label says most of it.
LEADERBOARD_COLUMNS = [
    Column("run", align="right"),
    Column("candidate", min_width=26, max_width=60, cut="middle"),
    Column("kind", priority=5),
    Column("provider", priority=4),
    Column("alias", priority=2, min_width=10),
    Column("quality", align="right"),
    Column("format", priority=3, align="right"),
    Column("general", priority=3, align="right"),
    Column("forget", priority=2, align="right"),
    Column("$/1k req", priority=1, align="right"),
    Column("break-even", priority=1, align="right"),
]


def print_leaderboard(task: str, run_ids: set[int] | None = None, dataset_id=None) -> None:
    from app.cli.tables import console as console_for_tables
    from app.cli.tables import print_table
    from app.database import get_engine
    from app.evaluation.compare import leaderboard
    from app.promotion.aliases import holders

    engine = get_engine()
    rows = leaderboard(engine, task, dataset_id)
    if run_ids is not None:
        rows = [r for r in rows if r.run_id in run_ids]
    held = {}
    for h in holders(engine, task):
        held.setdefault((h.promotion.provider, h.promotion.model), []).append(h.alias.alias)
    table, notes = [], []
    for r in rows:
        table.append(
            [
                str(r.run_id),
                r.label,
                r.kind,
                r.provider,
                ", ".join(held.get((r.provider, r.model), [])),
                _pct(r.quality),
                _pct(r.format),
                _pct(r.general),
                _delta(r.forgetting_delta),
                _usd(r.cost_per_1k_usd),
                _requests(r.breakeven_requests),
            ]
        )
        notes += [f"run {r.run_id}: {n}" for n in r.notes]
    print_table(LEADERBOARD_COLUMNS, table, title=f"task {task}")
    console = console_for_tables()
    for note in notes:
        console.print(f"  [dim]{note}[/]")


@click.command("compare")
@click.option("--task", required=True)
@click.option(
    "--flips",
    nargs=2,
    type=int,
    default=None,
    metavar="RUN_A RUN_B",
    help="List the examples whose score differs between two runs.",
)
@click.option(
    "--confusion",
    "confusion_run",
    type=int,
    default=None,
    metavar="RUN",
    help="Show a run's confusion table (categorical tasks).",
)
@click.option("--json", "as_json", is_flag=True)
def compare_command(task, flips, confusion_run, as_json) -> None:
    """Compare TASK's candidates: quality, format compliance, forgetting, cost per 1,000
    requests and break-even; or which examples flipped between two runs."""
    from app.database import get_engine
    from app.evaluation.compare import flips as find_flips
    from app.evaluation.compare import leaderboard

    engine = get_engine()
    if flips:
        try:
            changed = find_flips(engine, *flips)
        except (LookupError, ValueError) as exc:
            raise UserError(str(exc)) from None
        if as_json:
            click.echo(json.dumps([f.__dict__ | {"fixed": f.fixed} for f in changed], indent=2))
            return
        fixed = sum(f.fixed for f in changed)
        click.echo(
            f"{len(changed)} examples flipped between run {flips[0]} and run {flips[1]}: "
            f"{fixed} fixed, {len(changed) - fixed} broken"
        )
        for f in changed:
            mark = "fixed " if f.fixed else "broken"
            click.echo(
                f"  [{mark}] #{f.example_index}: expected {f.expected!r}; "
                f"A said {f.output_a!r}, B said {f.output_b!r}"
            )
        return
    if confusion_run is not None:
        _print_confusion(engine, confusion_run, as_json)
        return
    rows = leaderboard(engine, task)
    if not rows:
        raise UserError(f"no finished eval runs for task {task!r}; run: ftm eval --task {task} ...")
    from app.gateway.shadow import figures

    shadowed = figures(engine, task)
    if as_json:
        out = []
        for r in rows:
            found = shadowed.get((r.provider, r.model))
            out.append(r.to_dict() | ({"shadow": found.to_dict()} if found else {}))
        click.echo(json.dumps(out, indent=2))
        return
    print_leaderboard(task)
    if shadowed:
        click.echo("shadow traffic through ftm serve (candidate's answers, never returned):")
        for f in shadowed.values():
            click.echo(f"  {f.model} [{f.provider}]: {f.summary()}")


def _print_confusion(engine, run_id: int, as_json: bool) -> None:
    from rich.table import Table

    from db.engine import read_session
    from db.models import EvalRun

    with read_session(engine) as session:
        run = session.get(EvalRun, run_id)
    if run is None:
        raise UserError(f"no eval run with id {run_id}")
    confusion = ((run.summary or {}).get("task") or {}).get("confusion")
    if not confusion:
        raise UserError(f"run {run_id} has no confusion table (it was not scored with 'label')")
    if as_json:
        click.echo(json.dumps(confusion, indent=2))
        return
    predicted = sorted({p for row in confusion.values() for p in row})
    table = Table(
        title=f"run {run_id}: expected (rows) vs predicted (columns)", title_justify="left"
    )
    table.add_column("expected")
    for p in predicted:
        table.add_column(p, justify="right")
    for expected, row in confusion.items():
        table.add_row(expected, *(str(row.get(p, 0)) for p in predicted))
    _console().print(table)
