"""`ftm local merge`: a merged model (base + LoRA adapter) from a finished local job."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.errors import UserError
from app.cli.quiet import library_output_to_log


@click.group("local")
def local() -> None:
    """Local training extras (merge an adapter into its base model)."""


@local.command("merge")
@click.argument("job_or_path")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the merged model (default: the job's merged/ directory).",
)
def merge(job_or_path: str, out_dir: str | None) -> None:
    """Merge the LoRA adapter of JOB_OR_PATH (a local job, a hosted job whose adapter was
    downloaded with `ftm jobs download`, a job directory or an adapter directory) into
    its base model: safetensors + tokenizer + chat template,
    loadable with AutoModelForCausalLM.from_pretrained."""
    path = Path(job_or_path).expanduser()
    if not path.exists():
        from app.database import get_engine
        from app.jobs.queries import JobNotFound, find_job
        from db.engine import read_session

        with read_session(get_engine()) as s:
            try:
                job = find_job(s, job_or_path)
            except JobNotFound as exc:
                raise UserError(str(exc)) from None
        path = _adapter_of(job)
    from providers.local.merge import MergeError, adapter_dir_of, merge_adapter

    try:
        adapter = adapter_dir_of(path)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    target = Path(out_dir) if out_dir else adapter.parent / "merged"
    click.echo(f"merging {adapter} into its base model ...")
    try:
        with library_output_to_log("merge"):
            out = merge_adapter(adapter, target)
    except MergeError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:  # transformers' word for a base model it cannot find
        raise UserError(
            f"cannot load the base model of {adapter}: {exc}. If it is a provider's name "
            "that does not load here, point the adapter at a local copy: "
            "ftm jobs download JOB --base-model PATH"
        ) from None
    click.echo(f"merged model written to {out}")


def _adapter_of(job) -> Path:
    """Where a job's adapter is on this machine: a local job's directory, else the
    adapter downloaded for it."""
    from app.jobs.providers import capabilities_of

    if capabilities_of(job.provider).runs_locally and (job.job_dir or job.remote_id):
        from app.settings import get_settings
        from db.storage import StorageMissing

        try:
            return get_settings().file_store.local_path(job.job_dir or job.remote_id)
        except StorageMissing as exc:
            raise UserError(f"job {job.id}: {exc}") from None
    from app.database import get_engine
    from app.jobs.weights import local_weights
    from db.engine import read_session

    with read_session(get_engine()) as session:
        weights = local_weights(session, job, "adapter")
    if weights is None:
        raise UserError(
            f"job {job.id} has no adapter on this machine: download a hosted job's with "
            f"ftm jobs download {job.id} (a full fine-tune has no adapter to merge)"
        )
    return weights.path
