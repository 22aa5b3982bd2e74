"""What `ftm data synth` prints: the spend estimate before, a progress line during, and
requested / kept / dropped by reason with the actual spend after."""

from __future__ import annotations

import sys

import click


def _usd(value: float | None) -> str:
    return "no price in the catalog" if value is None else f"${value:.6f}"


def print_estimate(est) -> None:
    click.echo(
        f"estimated teacher cost: {_usd(est.usd)}"
        + (f" (up to {_usd(est.usd_max)} if every attempt is needed)" if est.usd_max else "")
        + f"; ~{est.prompt_tokens_per_request:,.0f} prompt + "
        f"~{est.completion_tokens_per_request:,.0f} reply tokens per request",
        err=True,
    )


def progress_line(progress) -> None:
    """One line, rewritten in place at a terminal (nothing when stderr is a file)."""
    if not sys.stderr.isatty():
        return
    dropped = sum(progress.dropped.values())
    click.echo(
        f"\rsynth: {progress.kept}/{progress.requested} kept, {dropped} dropped, "
        f"{progress.attempts} requests ({progress.cache_hits} cached), "
        f"{_usd(progress.spend_usd)} ",
        err=True,
        nl=False,
    )


def print_result(result) -> None:
    p, d = result.progress, result.dataset
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"requested {p.requested}, kept {p.kept}, dropped {sum(p.dropped.values())}")
    for reason, n in sorted(p.dropped.items()):
        click.echo(f"  dropped {n:>4}  {reason}")
    if result.shortfall:
        short = ", ".join(f"{lab} {n}" for lab, n in sorted(result.shortfall.items()))
        click.echo(f"label quota shortfall: {short}")
    if result.topic_shortfall:
        short = ", ".join(f"{t} {n}" for t, n in sorted(result.topic_shortfall.items()))
        click.echo(f"topic quota shortfall: {short}")
    if p.stopped:
        click.echo(f"stopped early: {p.stopped}; kept what was made")
    click.echo(
        f"teacher cost: estimated {_usd(result.estimate.usd)}, actual {_usd(p.spend_usd)} "
        f"({p.attempts} requests, {p.cache_hits} from the cache)"
    )
    verb = "added" if result.created else "already added (same content)"
    click.echo(
        f"{verb}: dataset {d.name!r} (id {d.id}, {d.content_hash[:12]}): "
        f"{d.n_train:,} train / {d.n_validation:,} validation examples"
    )


def lineage_line(lineage: dict) -> str:
    """How a synthesized dataset was made, in one line (`ftm data show`)."""
    teacher, result = lineage["teacher"], lineage["result"]
    origin = (
        f"task {lineage['task']!r}"
        if lineage.get("task") is not None
        else f"dataset {lineage['parent_dataset']!r} (id {lineage['parent_dataset_id']})"
    )
    return (
        f"made by ftm data synth from {origin} with teacher {teacher['provider']} "
        f"{teacher['model']}{' (sandbox)' if teacher.get('simulated') else ''}, template "
        f"{lineage['template']}, seed {lineage['settings']['seed']}: requested "
        f"{result['requested']}, kept {result['kept']}, dropped "
        f"{sum(result['dropped'].values())}, spend {_usd(result['spend_usd'])}"
    )
