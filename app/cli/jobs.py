"""`ftm launch`, `ftm jobs list|show|cancel|pause|resume|download|import`, `ftm watch`."""

from __future__ import annotations

import json
from typing import Any

import click

from app.cli.errors import UserError
from app.cli.tables import Column
from app.costs.money import usd

STATUS_STYLES = {
    "pending": "dim",
    "uploading": "yellow",
    "validating": "yellow",
    "queued": "yellow",
    "running": "cyan",
    "paused": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "dim",
}


def status_text(status: str, *, stalled: bool = False) -> str:
    """A status in Rich markup, coloured, with a stall mark."""
    style = STATUS_STYLES.get(status, "white")
    return f"[{style}]{status}[/]" + (" [bold red]stalled[/]" if stalled else "")


def _auto_int(value: str | None, name: str) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--{name} must be a whole number or 'auto' (got {value!r})") from None


def _auto_float(value: str | None, name: str) -> float | str | None:
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise UserError(f"--{name} must be a number or 'auto' (got {value!r})") from None


def _console():
    from rich.console import Console

    return Console()


def _default_provider_name() -> str:
    """The provider a command uses when none is named (`default_provider`)."""
    from app.jobs.providers import default_provider, registry

    name = default_provider(registry().names())
    if name is None:
        raise UserError("no provider is installed; install ftm with its providers")
    return name


def _default_method(provider_name: str) -> str:
    """The provider's declared default method (`Provider.default_method`); an unknown
    provider is reported by the launch itself, which names the installed ones."""
    from app.jobs.providers import default_method_of

    return default_method_of(provider_name) or "supervised"


def _simulated(job) -> str:
    return " [bold magenta](simulated)[/]" if job.simulated else ""


@click.command("launch")
@click.option(
    "--provider",
    "provider_name",
    default=None,
    help="Provider to train with: an installed provider (a wrong name lists them). "
    "Default: the first hosted one.",
)
@click.option("--dataset", required=True, help="Dataset name or id (see `ftm data list`).")
@click.option(
    "--model", "base_model", required=True, help="Base model, e.g. gpt-4o-mini-2024-07-18."
)
@click.option(
    "--method",
    default=None,
    help="Training method, one the provider offers (hosted: supervised | dpo; local: "
    "lora, qlora, dora, ia3, prefix, full, dpo). Default: the provider's own default method.",
)
@click.option("--epochs", default=None, help="Number of epochs, or auto.")
@click.option("--batch-size", default=None, help="Batch size, or auto.")
@click.option("--lr-multiplier", default=None, help="Learning-rate multiplier, or auto.")
@click.option("--beta", default=None, help="DPO beta, or auto.")
@click.option("--suffix", default=None, help="Suffix in the fine-tuned model's name.")
@click.option("--seed", type=int, default=None)
@click.option("--name", default=None, help="A name for the job in ftm.")
@click.option(
    "--option",
    "raw_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider-specific option (repeatable).",
)
@click.option("--yes", "-y", is_flag=True, help="Go ahead without asking after warnings.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def launch(
    provider_name,
    dataset,
    base_model,
    method,
    epochs,
    batch_size,
    lr_multiplier,
    beta,
    suffix,
    seed,
    name,
    raw_options,
    yes,
    as_json,
) -> None:
    """Launch a fine-tuning job."""
    from app.jobs.launch import LaunchError, LaunchFailed, launch_job

    provider_name = provider_name or _default_provider_name()
    method = method or _default_method(provider_name)
    from app.jobs.queries import job_summary
    from providers.types import Hyperparameters

    hp: dict[str, Any] = {
        "n_epochs": _auto_int(epochs, "epochs"),
        "batch_size": _auto_int(batch_size, "batch-size"),
        "learning_rate_multiplier": _auto_float(lr_multiplier, "lr-multiplier"),
        "beta": _auto_float(beta, "beta"),
    }
    options: dict[str, Any] = {}
    for item in raw_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option takes KEY=VALUE (got {item!r})")
        options[key] = _parse_option_value(value)
    console = _console()
    spends: dict[str, Any] = {}

    def show_estimate(preview) -> None:
        # Before the question: a launch that spends money states its price first.
        if preview.billed or preview.simulated:
            spends.update(_print_estimate(console, preview))

    def show_quote(quote) -> None:
        # The provider's own price, asked once the data is uploaded and before the job
        # is created, printed beside ftm's estimate.
        if quote.total_usd is None:
            return
        ours = spends.get("ftm_estimate")
        beside = f"ftm's estimate: {ours}" if ours else "ftm has no estimate of its own"
        console.print(f"Provider's own estimate: {usd(quote.total_usd)} ({beside})")

    def confirm(warnings: list[str]) -> bool:
        for w in warnings:
            console.print(f"[yellow]warning:[/] {w}")
        if yes or not (warnings or spends.get("billed")):
            return True
        question = "Launch anyway" if warnings else "Launch"
        if spends.get("billed"):
            question += f" and spend {spends['amount']}"
        return click.confirm(f"{question}?", default=False)

    try:
        job = launch_job(
            provider_name,
            dataset,
            base_model,
            method=method,
            hyperparameters=Hyperparameters(**{k: v for k, v in hp.items() if v is not None}),
            suffix=suffix,
            seed=seed,
            options=options,
            confirm=confirm,
            name=name,
            on_estimate=show_estimate,
            on_quote=show_quote,
        )
    except LaunchFailed as exc:  # the provider's refusal, as it came (code included)
        param = f" (param: {exc.error['param']})" if exc.error.get("param") else ""
        raise UserError(
            f"{exc}{param}\nThe job is recorded as failed: ftm jobs show {exc.job_id}"
        ) from None
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(job_summary(job), indent=2))
        return
    cost = (
        f" (estimated training cost {usd(job.estimated_cost_usd)})"
        if job.estimated_cost_usd is not None
        else ""
    )
    console.print(
        f"Launched job [bold]{job.id}[/] on {job.provider}{_simulated(job)}{cost}: "
        f"{job.remote_id} {status_text(job.status)}\nFollow it with: ftm watch   or   "
        f"ftm jobs show {job.id}"
    )


def _print_estimate(console, preview) -> dict[str, Any]:
    """State a launch's estimated cost and its inputs; returns what the question needs."""
    from rich.markup import escape

    est = preview.estimate
    if est is None:
        if preview.simulated:
            console.print("Sandbox job: simulated, nothing is billed.")
            return {"billed": False}
        console.print(
            f"[yellow]No cost estimate[/] ({escape(preview.no_estimate or 'unknown')}); "
            "this provider bills per trained token."
        )
        return {"billed": True, "amount": "an unknown amount"}
    amount = usd(est["training_cost_usd"])
    if preview.simulated:
        console.print(f"Sandbox job: simulated, nothing is billed (priced as if real: {amount}).")
        return {"billed": False, "ftm_estimate": amount}
    console.print(
        f"Estimated training cost: [bold]{amount}[/] "
        f"({escape(est['base_model'])}, {escape(est['method'])})"
    )
    console.print(f"  inputs: {escape(est['note'])}")
    console.print(f"  prices: {escape(est['source'])}")
    if est.get("serving_note"):
        console.print(f"  serving: {escape(est['serving_note'])}")
    return {"billed": True, "amount": f"about {amount}", "ftm_estimate": amount}


def _parse_option_value(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


@click.group("jobs")
def jobs() -> None:
    """List, inspect, cancel, pause, resume and import fine-tuning jobs."""


# At 80 columns the model and status stay; the remote id, then the name give way first.
# The provider is never cut: "(simulated)" is the one fact that must not be lost.
JOB_COLUMNS = [
    Column("id", align="right"),
    Column("name", priority=3, min_width=10, max_width=32),
    Column("provider", priority=1),
    Column("model", min_width=22, cut="middle"),
    Column("status"),
    Column("progress", priority=1, align="right"),
    Column("loss", priority=2, align="right"),
    Column("remote id", priority=4, min_width=12, cut="middle"),
]


@jobs.command("list")
@click.option("--active", is_flag=True, help="Only jobs that have not ended.")
@click.option("--provider", default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(active, provider, limit, as_json) -> None:
    """Jobs, newest first."""
    from app.database import get_engine
    from app.jobs.queries import job_summary, list_jobs, progress_fraction
    from db.engine import read_session

    with read_session(get_engine()) as session:
        rows = list_jobs(session, active_only=active, provider=provider, limit=limit)
    if as_json:
        click.echo(json.dumps([job_summary(j) for j in rows], indent=2))
        return
    if not rows:
        click.echo("No jobs yet. Launch one with: ftm launch --dataset NAME --model MODEL")
        return
    from rich.text import Text

    from app.cli.tables import print_table

    rows_out = []
    for j in rows:
        frac = progress_fraction(j)
        provider_cell = Text(j.provider)
        if j.simulated:
            provider_cell.append(" (simulated)", style="magenta")
        rows_out.append(
            [
                str(j.id),
                j.name,
                provider_cell,
                j.base_model,
                Text.from_markup(status_text(j.status, stalled=j.stalled)),
                f"{frac:.0%}" if frac is not None else "-",
                f"{j.train_loss:.4f}" if j.train_loss is not None else "-",
                j.remote_id or "-",
            ]
        )
    print_table(JOB_COLUMNS, rows_out, title="Jobs")


@jobs.command("show")
@click.argument("ref")
@click.option("--events", "n_events", default=15, show_default=True, help="Events to show.")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(ref, n_events, as_json) -> None:
    """One job: status, hyperparameters, error, checkpoints, recent events."""
    from rich.table import Table

    from app.database import get_engine
    from app.jobs.health import health_list
    from app.jobs.queries import JobNotFound, job_detail, job_summary
    from db.engine import read_session

    try:
        with read_session(get_engine()) as session:
            d = job_detail(session, ref)
    except JobNotFound as exc:
        raise UserError(str(exc)) from None
    j = d.job
    if as_json:
        out = job_summary(j) | {
            "events": [
                {
                    "id": e.provider_event_id,
                    "created_at": e.created_at.isoformat(),
                    "level": e.level,
                    "type": e.type,
                    "message": e.message,
                }
                for e in d.events
            ],
            "checkpoints": [
                {"step": c.step, "model": c.model_ref, "metrics": c.metrics} for c in d.checkpoints
            ],
            "metrics": [
                {"step": m.step, "train_loss": m.train_loss, "eval_loss": m.eval_loss}
                for m in d.metrics
            ],
            "artifacts": [{"kind": a.kind, "uri": a.uri} for a in d.artifacts],
            "health": health_list(d.events),
        }
        click.echo(json.dumps(out, indent=2))
        return
    console = _console()
    console.print(f"[bold]Job {j.id}[/] {j.name}{_simulated(j)}")
    lines = [
        ("status", status_text(j.status, stalled=j.stalled)),
        ("provider", f"{j.provider} {j.remote_id or ''}"),
        ("model", f"{j.base_model} ({j.method})"),
        ("progress", f"step {j.step or 0}/{j.total_steps or '?'}"),
        (
            "loss",
            f"train {j.train_loss if j.train_loss is not None else '-'}, "
            f"eval {j.eval_loss if j.eval_loss is not None else '-'}",
        ),
        ("hyperparameters", json.dumps(j.hyperparameters) if j.hyperparameters else "-"),
        ("fine-tuned model", j.fine_tuned_model or "-"),
        ("trained tokens", f"{j.trained_tokens:,}" if j.trained_tokens is not None else "-"),
        ("estimated cost", usd(j.estimated_cost_usd)),
        ("actual cost", usd(j.actual_cost_usd)),
        ("uid", j.uid),
    ]
    if j.error:
        lines.append(
            (
                "error",
                f"[red]{j.error.get('message')}[/] (code {j.error.get('code')}"
                f", param {j.error.get('param')})",
            )
        )
    for key, value in lines:
        console.print(f"  {key:>16}: {value}")
    findings = [e for e in d.events if e.type == "health"]
    console.print(f"  {'health':>16}: " + ("[yellow]see below[/]" if findings else "no findings"))
    for e in findings:
        console.print(f"    [yellow]step {(e.data or {}).get('step')}[/] {e.message}")
    if d.checkpoints:
        table = Table(title="Checkpoints")
        for col in ("step", "model", "train loss"):
            table.add_column(col)
        for c in d.checkpoints:
            table.add_row(str(c.step), c.model_ref, str((c.metrics or {}).get("train_loss", "-")))
        console.print(table)
    if d.events:
        table = Table(title=f"Events (last {min(n_events, len(d.events))} of {len(d.events)})")
        for col in ("time", "level", "message"):
            table.add_column(col, overflow="fold")
        for e in d.events[-n_events:]:
            style = {"warn": "yellow", "error": "red"}.get(e.level, "")
            table.add_row(
                e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"[{style}]{e.level}[/]" if style else e.level,
                e.message,
            )
        console.print(table)


def _action(verb: str, ref: str) -> None:
    from app.jobs import actions
    from app.jobs.queries import JobNotFound
    from providers.errors import ProviderError

    try:
        job = getattr(actions, f"{verb}_job")(ref)
    except (actions.JobActionError, JobNotFound) as exc:
        raise UserError(str(exc)) from None
    except ProviderError as exc:
        raise UserError(exc.message) from None
    _console().print(f"Job {job.id}{_simulated(job)}: {status_text(job.status)}")


@jobs.command("cancel")
@click.argument("ref")
def cancel_cmd(ref) -> None:
    """Cancel a job."""
    _action("cancel", ref)


@jobs.command("pause")
@click.argument("ref")
def pause_cmd(ref) -> None:
    """Pause a running job (providers that can pause)."""
    _action("pause", ref)


@jobs.command("resume")
@click.argument("ref")
def resume_cmd(ref) -> None:
    """Resume a paused job, or continue a failed or cancelled one from its checkpoint (local)."""
    _action("resume", ref)


@jobs.command("download")
@click.argument("ref")
@click.option(
    "--kind",
    type=click.Choice(["adapter", "merged"]),
    default="adapter",
    show_default=True,
    help="The LoRA adapter, or the complete (merged) model.",
)
@click.option(
    "--base-model",
    default=None,
    help="A local directory of the adapter's base model, for when the provider's name "
    "for it does not load on this machine.",
)
def download_cmd(ref, kind, base_model) -> None:
    """Download a finished hosted job's weights into its job directory (PEFT layout),
    to evaluate them here (ftm eval --job ID --local-weights) or merge them
    (ftm local merge ID)."""
    from app.jobs.queries import JobNotFound
    from app.jobs.weights import WeightsError, download
    from providers.errors import ProviderError

    try:
        weights = download(ref, kind, base_model=base_model)
    except (WeightsError, JobNotFound) as exc:
        raise UserError(str(exc)) from None
    except ProviderError as exc:
        raise UserError(exc.message) from None
    size = weights.meta.get("bytes")
    click.echo(
        f"Job {weights.job_id}: {kind} downloaded to {weights.path}"
        + (f" ({size / 1e6:.1f} MB)" if size else "")
    )
    if weights.base_model:
        click.echo(f"base model: {weights.base_model}")
    click.echo(
        f"evaluate it here: ftm eval --task TASK --job {weights.job_id} --local-weights"
        + (f"; merge it: ftm local merge {weights.job_id}" if kind == "adapter" else "")
    )


@jobs.command("import")
@click.option(
    "--provider", "provider_name", default=None, help="Default: the first hosted provider."
)
@click.option("--limit", default=100, show_default=True, help="How many recent jobs to look at.")
def import_cmd(provider_name, limit) -> None:
    """Track jobs created elsewhere (web dashboard, other scripts)."""
    provider_name = provider_name or _default_provider_name()
    from app.jobs.importing import import_jobs
    from providers.errors import ProviderError

    try:
        report = import_jobs(provider_name, limit=limit)
    except ProviderError as exc:
        raise UserError(exc.message) from None
    click.echo(f"Imported {len(report.imported)} job(s); {report.already_known} already tracked.")
    if report.reattached:
        ids = ", ".join(str(i) for i in report.reattached)
        click.echo(
            f"Found the remote job of {len(report.reattached)} launch(es) whose create "
            f"answer was lost: {ids}; tracking them again."
        )
    for message in report.refresh_errors:
        click.echo(f"warning: could not refresh {message}", err=True)


def _deployments_tick(console) -> None:
    """Each tick: stop deployments past their idle limit, warn of idle ones without one."""
    from rich.markup import escape

    from app.database import get_engine
    from app.deployments.idle import enforce_idle_stops, idle_warnings

    engine = get_engine()
    for stopped in enforce_idle_stops(engine):
        console.print(f"  [yellow]{escape(stopped.line())}[/]")
    for warning in idle_warnings(engine):
        console.print(f"  [yellow]{escape(warning)}[/]")


@click.command("watch")
@click.option("--once", is_flag=True, help="One poll cycle, then exit.")
@click.option("--interval", type=float, default=None, help="Seconds between cycles.")
def watch(once, interval) -> None:
    """Poll active jobs and record their progress (runs until Ctrl+C)."""
    import asyncio

    from rich.markup import escape

    from app.jobs.poller import CycleReport, Poller

    console = _console()

    def report(r: CycleReport) -> None:
        console.print(
            f"{r.jobs} active, {r.refreshed} refreshed, {r.events_recorded} new events, "
            f"{r.finished} finished, {r.errors} errors, {r.deferred} backing off "
            f"({r.duration_s:.2f} s)"
            + (
                f"; {r.awaiting_confirmation} launch(es) not confirmed yet, still looking"
                if r.awaiting_confirmation
                else ""
            )
        )
        for m in r.messages:
            console.print(f"  [yellow]{m}[/]")
        for m in r.health:
            console.print(f"  [yellow]health: {escape(m)}[/]")
        _deployments_tick(console)

    poller = Poller()
    try:
        asyncio.run(poller.run(interval_s=interval, on_cycle=report, cycles=1 if once else None))
    except KeyboardInterrupt:
        pass
    finally:
        poller.close()
