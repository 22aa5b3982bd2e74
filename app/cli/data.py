"""`ftm data`: check a training file, add it as a dataset, mix general data in, list and
show datasets."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from app.cli.errors import UserError
from app.cli.tables import Column

PROGRESS_MIN_BYTES = 8 << 20


@click.group("data")
def data() -> None:
    """Check training files and add them as versioned datasets."""


def _json_out(payload) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


@contextmanager
def _progress_bar(path: str, enabled: bool = True):
    """A progress bar on stderr, only for a large file read by a person at a terminal."""
    try:
        size = Path(path).stat().st_size if Path(path).is_file() else 0
    except OSError:
        size = 0
    if not enabled or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"checking {Path(path).name}", total=size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_report(report: dict) -> None:
    from rich.console import Console

    from app.datasets.render import report_renderable

    Console().print(report_renderable(report))


_model = click.option(
    "--model",
    "-m",
    default=None,
    metavar="MODEL",
    help="OpenAI model id, or a local model directory to count with its own "
    "tokenizer and chat template. [default: gpt-4o-mini-2024-07-18]",
)
_threshold = click.option(
    "--near-dup-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Estimated similarity for near-duplicates "
    "[default: settings data.near_duplicate_threshold]",
)
_val = click.option(
    "--val-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of examples held out for validation.",
)
_seed = click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")


@data.command("check")
@click.argument("file", type=click.Path(path_type=str))
@_model
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_threshold
@_val
@_seed
def check(
    file: str,
    model: str | None,
    as_json: bool,
    near_dup_threshold: float | None,
    val_fraction: float,
    seed: int,
) -> None:
    """Validate FILE by OpenAI's rules, count its tokens, find duplicates and leakage.

    Exits 1 when the verdict is errors.
    """
    from app.datasets.check import check_file

    try:
        with _progress_bar(file, enabled=not as_json) as progress:
            report = check_file(
                file,
                model=model,
                near_dup_threshold=near_dup_threshold,
                progress=progress,
                val_fraction=val_fraction,
                seed=seed,
            )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        _json_out(report.to_dict())
    else:
        _print_report(report.to_dict())
    if report.verdict == "errors":
        sys.exit(1)


@data.command("add")
@click.argument("file", type=click.Path(path_type=str))
@click.option("--name", default=None, help="Dataset name [default: the file's name].")
@_val
@_seed
@click.option(
    "--dedupe",
    is_flag=True,
    help="Write FILE.dedup.jsonl without exact and near duplicates, and add that.",
)
@_model
@_threshold
@click.option("--json", "as_json", is_flag=True, help="Print the dataset record as JSON.")
def add(
    file: str,
    name: str | None,
    val_fraction: float,
    seed: int,
    dedupe: bool,
    model: str | None,
    near_dup_threshold: float | None,
    as_json: bool,
) -> None:
    """Check FILE and add it as a dataset (refused when it has errors).

    Adding the same content again returns the existing dataset.
    """
    from app.datasets.store import DatasetRejected, add_dataset

    try:
        with _progress_bar(file, enabled=not as_json) as progress:
            dataset, created = add_dataset(
                file,
                name=name,
                val_fraction=val_fraction,
                seed=seed,
                dedupe=dedupe,
                model=model,
                near_dup_threshold=near_dup_threshold,
                progress=progress,
            )
    except DatasetRejected as exc:
        if not as_json:
            _print_report(exc.report.to_dict())
        raise UserError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    if as_json:
        _json_out(_record(dataset) | {"created": created})
        return
    if not created:
        click.echo(
            f"already added: dataset {dataset.name!r} (id {dataset.id}) has the same "
            f"content ({dataset.content_hash[:12]}); nothing changed"
        )
        return
    _print_report(dataset.report)
    click.echo(
        f"added dataset {dataset.name!r} (id {dataset.id}, {dataset.content_hash[:12]}): "
        f"{dataset.n_train:,} train / {dataset.n_validation:,} validation examples "
        f"in {dataset.data_dir}"
    )


def _record(dataset) -> dict:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "content_hash": dataset.content_hash,
        "format": dataset.format,
        "n_examples": dataset.n_examples,
        "n_train": dataset.n_train,
        "n_validation": dataset.n_validation,
        "verdict": dataset.verdict,
        "data_dir": dataset.data_dir,
        "source_path": dataset.source_path,
        "stats": dataset.stats,
    }


# The name and the verdict stay at any width; the hash (a prefix of it finds the
# dataset too) and the format give way first.
DATASET_COLUMNS = [
    Column("id", align="right"),
    Column("name", min_width=28, cut="middle"),
    Column("format", priority=3),
    Column("examples", priority=2, align="right"),
    Column("train/val", priority=2),
    Column("tokens", priority=1, align="right"),
    Column("verdict"),
    Column("hash", priority=4, min_width=8),
]


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the datasets as JSON.")
def list_(as_json: bool) -> None:
    """List datasets with size, token totals and verdict."""
    from app.cli.tables import print_table
    from app.database import get_engine
    from app.datasets.render import verdict_text
    from app.datasets.store import list_datasets
    from db.engine import read_session

    with read_session(get_engine()) as session:
        rows = list_datasets(session)
    if as_json:
        _json_out([_record(d) for d in rows])
        return
    if not rows:
        click.echo("No datasets yet. Add one with: ftm data add FILE")
        return
    rows_out = []
    for d in rows:
        total = ((d.stats or {}).get("tokens") or {}).get("total")
        rows_out.append(
            [
                str(d.id),
                d.name,
                d.format,
                f"{d.n_examples:,}",
                f"{d.n_train:,}/{d.n_validation:,}",
                f"{total:,}" if total is not None else "-",
                verdict_text(d.verdict),
                d.content_hash[:12],
            ]
        )
    print_table(DATASET_COLUMNS, rows_out)


@data.command("show")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the stored report as JSON.")
def show(dataset: str, as_json: bool) -> None:
    """Show a dataset's full report (by name, id or hash prefix)."""
    from app.database import get_engine
    from app.datasets.store import get_dataset
    from db.engine import read_session

    with read_session(get_engine()) as session:
        try:
            found = get_dataset(session, dataset)
        except LookupError as exc:
            raise UserError(str(exc)) from None
    if as_json:
        _json_out(_record(found) | {"report": found.report})
        return
    _print_report(found.report)
    lineage = (found.stats or {}).get("lineage") or {}
    if lineage.get("kind") == "synth":
        from app.cli.synth_output import lineage_line

        click.echo(lineage_line(lineage))
    else:
        from app.datasets.mix import describe_mix

        mixed = describe_mix(found)
        if mixed:
            click.echo(f"mix: {mixed}")


@data.command("mix")
@click.argument("task")
@click.option(
    "--with",
    "general",
    default="builtin",
    show_default=True,
    metavar="DATASET|builtin",
    help="The general dataset to mix in; builtin is the small set shipped with ftm.",
)
@click.option(
    "--share",
    type=float,
    required=True,
    help="The general part of the train split, above 0 and below 1 (e.g. 0.1).",
)
@click.option(
    "--by",
    type=click.Choice(["examples", "tokens"]),
    default="examples",
    show_default=True,
    help="Measure the share in examples or in tokens.",
)
@click.option(
    "--name", default=None, help="Name of the new dataset [default: TASK-mixSHARE[-tokens]]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which general examples.")
@click.option("--json", "as_json", is_flag=True, help="Print the new dataset as JSON.")
def mix(
    task: str,
    general: str,
    share: float,
    by: str,
    name: str | None,
    seed: int,
    as_json: bool,
) -> None:
    """Mix general examples into TASK's train split, against forgetting.

    Makes a new dataset version; TASK's validation split is kept as it is.
    """
    from app.datasets.mix import MixError, mix_dataset
    from app.datasets.store import DatasetRejected

    try:
        result = mix_dataset(task, general, share=share, by=by, name=name, seed=seed)
    except (MixError, DatasetRejected, OSError) as exc:
        raise UserError(str(exc)) from None
    dataset, plan = result.dataset, result.plan
    if as_json:
        _json_out(
            _record(dataset)
            | {"created": result.created, "lineage": (dataset.stats or {}).get("lineage")}
        )
        return
    verb = "mixed" if result.created else "already mixed (same content, nothing changed)"
    dup = (
        f"; {plan.n_duplicates} general example(s) repeat the task and were left out"
        if plan.n_duplicates
        else ""
    )
    click.echo(
        f"{verb}: dataset {dataset.name!r} (id {dataset.id}, {dataset.content_hash[:12]})\n"
        f"  train: {plan.n_general:,} general examples spread through "
        f"{len(plan.train) - plan.n_general:,} task examples{dup}\n"
        f"  general share by {by}: {plan.achieved_share:.3f} (asked {share:.3f}; "
        f"{plan.general_amount:,} of {plan.task_amount + plan.general_amount:,} {by})\n"
        f"  validation: the task's {dataset.n_validation:,} examples, unchanged"
    )


@data.command("synth")
@click.option("--from", "source", default=None, metavar="DATASET", help="Source dataset.")
@click.option(
    "--task", default=None, metavar="DESCRIPTION", help="Instead of --from: the task, no seeds."
)
@click.option(
    "--labels", default=None, metavar="A,B,...", help="With --task: the label set (balanced)."
)
@click.option("--topic", "topics", multiple=True, metavar="T", help="Spread the count over topics.")
@click.option("--provider", "-p", required=True, help="The teacher's provider.")
@click.option("--model", "-m", required=True, help="The teacher model.")
@click.option("--count", "-n", type=click.IntRange(1), required=True, help="Examples wanted.")
@click.option(
    "--name",
    default=None,
    help="New dataset name [default: SOURCE-synth; with --task: synth-FIRST-WORDS].",
)
@click.option("--max-spend", type=float, default=None, metavar="USD", help="Refuse above this.")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed rotation seed.")
@click.option("--max-tokens", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--max-attempts", type=click.IntRange(1), default=None, help="[default: 3 x --count]")
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    metavar="SPEC",
    help="A format every reply must pass: json, json_schema:PATH, regex:PATTERN "
    "(JSON validity is implied when every seed's reply is JSON).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def synth(
    source: str | None,
    task: str | None,
    labels: str | None,
    topics: tuple[str, ...],
    provider: str,
    model: str,
    count: int,
    name: str | None,
    max_spend: float | None,
    temperature: float,
    seed: int,
    max_tokens: int,
    max_attempts: int | None,
    scorers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Generate COUNT new examples like DATASET's (train split) with a teacher model, or
    (--task) for a described task with no seeds; --topic spreads COUNT over topics.

    Kept only when they pass the checks of `ftm data add`, are no near-duplicate of the
    seeds, of each other or of the validation half, and (categorical tasks) carry a label
    of the task within its balanced quota. Added as a new dataset with its lineage.
    """
    from app.cli.synth_output import print_estimate, print_result, progress_line
    from app.datasets.synth import SynthError, SynthSettings
    from app.datasets.synth_service import synthesize

    settings = SynthSettings(
        count=count,
        temperature=temperature,
        seed=seed,
        max_tokens=max_tokens,
        max_attempts=max_attempts,
        max_spend=max_spend,
        scorers=scorers,
        topics=topics,
    )
    label_set = [lab.strip() for lab in labels.split(",") if lab.strip()] if labels else None
    try:
        result = synthesize(
            source,
            provider,
            model,
            settings,
            name=name,
            task=task,
            labels=label_set,
            on_estimate=None if as_json else print_estimate,
            on_progress=None if as_json else progress_line,
        )
    except (SynthError, LookupError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    if as_json:
        _json_out(_record(result.dataset) | {"created": result.created, "synth": result.lineage})
        return
    print_result(result)
