"""`ftm demo`: watch a real local fine-tune on this machine's CPU in about a minute.

Builds a tiny model and a small labelling dataset under FTM_HOME (no download), launches
a LoRA job on the local provider like any other job, prints its progress live from the
database, then compares the base and fine-tuned models on held-out examples.
"""

from __future__ import annotations

import time

import click

from app.cli.errors import UserError
from app.cli.quiet import library_output_to_log

DEMO_MODEL = "tiny-demo"
DEMO_DATASET = "demo-labelling"


def _line(job) -> str:
    parts = [f"step {job.step or 0}/{job.total_steps or '?'}"]
    if job.train_loss is not None:
        parts.append(f"loss {job.train_loss:.3f}")
    if job.eval_loss is not None:
        parts.append(f"eval loss {job.eval_loss:.3f}")
    if job.tokens_per_second:
        parts.append(f"{job.tokens_per_second:,.0f} tok/s")
    if job.eta_s is not None and job.status == "running":
        parts.append(f"eta {job.eta_s:.0f}s")
    return "  ".join(parts)


@click.command("demo")
@click.option("--epochs", default=10, show_default=True, help="Passes over the demo data.")
@click.option("--no-wait", is_flag=True, help="Launch and return; watch with `ftm jobs show`.")
def demo(epochs: int, no_wait: bool) -> None:
    """Train a tiny model on a small labelling task, locally, with live progress."""
    # building and comparing load models here; what the libraries say goes to a log
    with library_output_to_log("demo"):
        _demo(epochs, no_wait)


def _demo(epochs: int, no_wait: bool) -> None:
    from app.database import get_engine
    from app.datasets.store import add_dataset
    from app.jobs.launch import LaunchError, launch_job
    from app.jobs.providers import make_provider
    from app.settings import get_settings
    from db.engine import read_session
    from db.repository import get_job
    from providers.local import demo_data

    settings = get_settings()
    engine = get_engine()
    model_dir = settings.home / "models" / DEMO_MODEL
    if not (model_dir / "config.json").is_file():
        click.echo(f"building a tiny Llama-architecture model in {model_dir} ...")
        from providers.local.tiny_model import build_tiny_model

        build_tiny_model(model_dir, demo_data.corpus_texts())
    data_path = demo_data.write_jsonl(
        settings.home / "demo" / "labelling.jsonl", demo_data.labelling_examples(150, seed=1)
    )
    dataset, _ = add_dataset(data_path, name=DEMO_DATASET, val_fraction=0.2, seed=0)
    click.echo(
        f"dataset {dataset.name}: {dataset.n_train} train / {dataset.n_validation} "
        "validation examples (label a thing as animal, fruit or color)"
    )
    provider = make_provider("local", engine=engine)
    try:
        job = launch_job(
            "local",
            dataset.id,
            str(model_dir),
            method="lora",
            options={
                "epochs": epochs,
                "learning_rate": 3e-3,
                "batch_size": 8,
                "early_stopping_patience": 5,
            },
            name="demo: tiny model, labelling task",
            engine=engine,
            provider=provider,
        )
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"job {job.id} launched: a detached worker trains it (log: {job.remote_id}/worker.log)"
    )
    if no_wait:
        click.echo(f"follow it with: ftm jobs show {job.id}")
        return
    last = None
    while True:
        remote = provider.refresh(job.remote_id).job  # also notices a worker that died
        with read_session(engine) as s:
            row = get_job(s, job.id)
        line = _line(row)
        if line != last and row.step:
            click.echo(f"  {line}")
            last = line
        if remote.status.is_terminal:
            break
        time.sleep(0.5)
    if remote.status.value != "succeeded":
        msg = remote.error.message if remote.error else remote.status.value
        raise UserError(f"the demo job {job.id} ended {remote.status.value}: {msg}")
    click.echo(f"done: adapter in {remote.fine_tuned_model}")
    _compare(str(model_dir), remote.fine_tuned_model, dataset)


def _compare(base: str, adapter: str, dataset) -> None:
    from app.datasets.store import load_examples
    from providers.local.inference import complete_batch

    examples = load_examples(dataset, "validation")
    prompts = [e["messages"][:-1] for e in examples]
    gold = [e["messages"][-1]["content"] for e in examples]
    for label, model in (("base model", base), ("fine-tuned", adapter)):
        outs = complete_batch(model, prompts, max_tokens=6)
        acc = sum(o.text.strip() == g for o, g in zip(outs, gold, strict=True)) / len(gold)
        click.echo(
            f"{label:>11}: exact match {acc:.0%} on {len(gold)} held-out examples"
            f" (e.g. {prompts[0][-1]['content']!r} -> {outs[0].text!r})"
        )
