"""`ftm data synth` as one use-case, for the CLI (and any other front end): find the
source, build the teacher, estimate and cap the spend before any request, run, and add
what was kept as a new dataset version with its lineage in ``stats["lineage"]``.

The source is a dataset (its train split gives the seeds) or a task description
(``task``, with an optional label set): exactly one of the two."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.datasets.synth import (
    Estimate,
    SynthError,
    Synthesizer,
    SynthProgress,
    SynthSettings,
    estimate,
    lineage,
    run,
)


@dataclass
class SynthResult:
    dataset: object  # db.models.Dataset
    created: bool
    estimate: Estimate
    progress: SynthProgress
    shortfall: dict[str, int]
    lineage: dict
    topic_shortfall: dict[str, int]


def synthesize(
    source_name: str | None,
    provider_name: str,
    model: str,
    settings: SynthSettings,
    *,
    name: str | None = None,
    task: str | None = None,
    labels: list[str] | None = None,
    provider=None,
    on_estimate: Callable[[Estimate], None] | None = None,
    on_progress: Callable[[SynthProgress], None] | None = None,
) -> SynthResult:
    """Run a synthesis and record its dataset.

    ``source_name`` or ``task``: exactly one; ``labels`` only with ``task``.
    ``provider``: an already built teacher (tests pass a wrapped one); default: built
    from the settings by name.

    Raises:
        SynthError: the source, the teacher or the spend cap forbids the run, or nothing
            was kept.
        LookupError: no such dataset.
    """
    from app.database import get_engine
    from app.datasets.store import (
        DatasetRejected,
        add_dataset,
        datasets_dir,
        get_dataset,
        load_examples,
    )
    from app.settings import get_settings
    from db.engine import read_session, write_session
    from db.models import Dataset

    if settings.count < 1:
        raise SynthError(f"--count must be at least 1, got {settings.count}")
    if (source_name is None) == (task is None):
        raise SynthError(
            "give exactly one of --from DATASET (seed examples) and --task DESCRIPTION (no seeds)"
        )
    if labels is not None and task is None:
        raise SynthError("--labels goes with --task; with --from the labels come from the dataset")
    engine = get_engine()
    threshold = get_settings().data.near_duplicate_threshold
    source = None
    if source_name is not None:
        with read_session(engine) as session:
            source = get_dataset(session, source_name)
        synth = Synthesizer(
            load_examples(source, "train"),
            load_examples(source, "validation"),
            settings,
            threshold=threshold,
        )
    else:
        synth = Synthesizer([], [], settings, threshold=threshold, task=task, labels=labels)
    if provider is None:
        provider = _teacher(provider_name, engine)
    est = estimate(synth, provider, model)
    if on_estimate is not None:
        on_estimate(est)
    if settings.max_spend is not None:
        if est.usd is None:
            raise SynthError(
                f"no per-token price for {provider_name} model {model} in the price "
                "catalog, so --max-spend cannot be kept; drop --max-spend to run anyway"
            )
        if est.usd > settings.max_spend:
            raise SynthError(
                f"the estimated teacher cost ${est.usd:.4f} for {settings.count} examples is "
                f"above --max-spend ${settings.max_spend:.4f}; nothing was requested. Lower "
                "--count or raise --max-spend"
            )

    target_name = name or (f"{source.name}-synth" if source else _task_name(task))
    work = datasets_dir() / ".synth"
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{target_name}-seed{settings.seed}-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    out.unlink(missing_ok=True)
    progress = run(synth, provider, model, out, engine=engine, on_progress=on_progress)
    if progress.kept == 0:
        out.unlink(missing_ok=True)
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(progress.dropped.items())) or "none"
        why = f"; stopped: {progress.stopped}" if progress.stopped else ""
        raise SynthError(
            f"no generated example was kept after {progress.attempts} request(s) "
            f"(dropped: {dropped}){why}. Try another teacher or more --max-attempts"
        )
    record = lineage(source, provider, model, synth, est)
    try:
        split = {"val_fraction": source.val_fraction, "seed": source.split_seed} if source else {}
        dataset, created = add_dataset(out, name=target_name, **split)
    except DatasetRejected as exc:
        raise SynthError(
            f"{progress.kept} example(s) were kept and written to {out}, but they cannot "
            f"be added as a dataset: {exc}. Rerun with a larger --count (requests "
            "already made are answered from the cache when asked again)"
        ) from None
    if created:
        with write_session(engine) as session:
            row = session.get(Dataset, dataset.id)
            row.stats = dict(row.stats or {}) | {"lineage": record}
            session.add(row)
        with read_session(engine) as session:
            dataset = session.get(Dataset, dataset.id)
    return SynthResult(
        dataset, created, est, progress, synth.shortfall(), record, synth.topic_shortfall()
    )


def _task_name(task: str) -> str:
    """A default dataset name from the first words of a task description."""
    words = re.findall(r"[a-z0-9]+", task.lower())[:6]
    return f"synth-{'-'.join(words) or 'task'}"


def _teacher(provider_name: str, engine):
    from app.jobs.providers import make_provider

    try:
        return make_provider(provider_name, engine=engine)
    except Exception as exc:  # unknown provider or bad settings: say which, no traceback
        raise SynthError(f"teacher provider {provider_name!r}: {exc}") from None
