"""The evaluate use-case shared by `ftm eval`, the TUI and `ftm migrate`: build the
candidates of a task (base zero-shot, base k-shot, fine-tuned models, jobs and their
checkpoints) and run each on the same eval set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from app.evaluation.candidates import Candidate
from app.evaluation.data import EvalDataError, eval_examples, find_dataset, training_examples
from app.evaluation.runner import EvalConfig, run_eval
from app.evaluation.scorers import default_scorer_specs
from db.engine import read_session
from db.models import Checkpoint, EvalRun, Job
from providers.base import Provider


@dataclass
class EvalRequest:
    task: str
    dataset: str | int | None
    """Whose training half gives the few-shot examples (and, by default, the eval set);
    None: the dataset the ``job_ids`` were trained on (`with_job_defaults`)."""
    provider: str | None = None
    base_model: str | None = None
    eval_dataset: str | int | None = None
    """Evaluate on another dataset instead of the held-out half."""
    split: str = "validation"
    zero_shot: bool = True
    few_shot: int = 3
    seed: int = 0
    models: list[str] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    checkpoints: bool = False
    local_weights: bool = False
    """Evaluate the jobs' downloaded weights (`ftm jobs download`) on this machine, and
    the baselines on the base those weights load onto, instead of through the jobs'
    provider."""
    scorers: list[str] | None = None
    general: bool = True
    limit: int | None = None
    concurrency: int = 8
    max_tokens: int = 256
    judge: dict | None = None


def task_labels(examples: list[dict]) -> list[str] | None:
    """The label set of a categorical task (from the dataset intake's detector)."""
    from app.datasets.labels import categorical_labels

    labels = categorical_labels(examples)
    if not labels:
        return None
    return sorted({str(label) for label in labels})


def job_candidates(
    engine: Engine, job_ids: list[int], checkpoints: bool, local_weights: bool = False
) -> list[Candidate]:
    out = []
    with read_session(engine) as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            if job is None:
                raise EvalDataError(f"no job with id {job_id}; list them with: ftm jobs list")
            if local_weights:
                out.append(_local_candidate(session, job, checkpoints))
                continue
            if not job.fine_tuned_model:
                raise EvalDataError(
                    f"job {job_id} has no fine-tuned model yet (status {job.status}); wait for "
                    "it to succeed (ftm watch)"
                )
            out.append(
                Candidate(
                    "fine_tuned",
                    job.provider,
                    job.fine_tuned_model,
                    job_id=job.id,
                    base_model=job.base_model,
                )
            )
            if checkpoints:
                rows = session.exec(
                    select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
                )
                for ckpt in rows:
                    if ckpt.model_ref != job.fine_tuned_model:
                        out.append(
                            Candidate(
                                "checkpoint",
                                job.provider,
                                ckpt.model_ref,
                                job_id=job.id,
                                base_model=job.base_model,
                            )
                        )
    return out


def _local_candidate(session: Session, job: Job, checkpoints: bool) -> Candidate:
    """The job's downloaded weights, evaluated here by the provider that loads them."""
    from app.jobs.weights import local_loader, local_weights

    if checkpoints:
        raise EvalDataError(
            "--checkpoints evaluates a job's checkpoints through its provider; with "
            "--local-weights only the downloaded weights are evaluated"
        )
    weights = local_weights(session, job)
    if weights is None:
        raise EvalDataError(
            f"job {job.id} has no weights on this machine; download them first: "
            f"ftm jobs download {job.id}"
        )
    from app.settings import get_settings

    return Candidate(
        "fine_tuned",
        local_loader(),
        # As the database names it (jobs/<uid>/adapter): the same on every machine.
        get_settings().file_store.ref_for(weights.path) or str(weights.path),
        job_id=job.id,
        base_model=weights.base_model,
    )


def _local_defaults(engine: Engine, req: EvalRequest) -> EvalRequest:
    """With --local-weights the baselines run here, on the base the weights load onto."""
    from app.jobs.weights import local_loader

    candidates = job_candidates(engine, req.job_ids, False, local_weights=True)
    bases = {c.base_model for c in candidates}
    base_model = req.base_model
    if base_model is None:
        if len(bases) != 1 or None in bases:
            raise EvalDataError(
                "say which local base model the baselines run on: --base PATH (the "
                "downloaded weights name different bases, or none)"
            )
        base_model = bases.pop()
    return replace(req, provider=req.provider or local_loader(), base_model=base_model)


def with_job_defaults(engine: Engine, req: EvalRequest) -> EvalRequest:
    """``req`` with what it leaves out taken from its jobs: the provider and base model
    the baselines run on, and the dataset, when every job agrees on them."""
    if not req.job_ids or (req.provider and req.base_model and req.dataset is not None):
        return req
    if req.local_weights and not (req.provider and req.base_model):
        req = _local_defaults(engine, req)
    with read_session(engine) as session:
        jobs = [session.get(Job, job_id) for job_id in req.job_ids]
    missing = [job_id for job_id, job in zip(req.job_ids, jobs, strict=True) if job is None]
    if missing:
        raise EvalDataError(f"no job with id {missing[0]}; list them with: ftm jobs list")
    provider = req.provider
    if provider is None:
        provider = _one_value(jobs, lambda j: j.provider, "providers", "--provider NAME")
    base_model = req.base_model
    if base_model is None:
        same_provider = [j for j in jobs if j.provider == provider]
        if not same_provider:
            raise EvalDataError(
                f"no job ran on {provider}; say which base model to compare with: --base MODEL"
            )
        base_model = _one_value(
            same_provider, lambda j: j.base_model, "base models", "--base MODEL"
        )
    dataset = req.dataset
    if dataset is None:
        dataset = _one_value(jobs, lambda j: j.dataset_id, "datasets", "--dataset NAME")
        if dataset is None:
            raise EvalDataError(
                f"job {jobs[0].id} has no recorded dataset; name one with --dataset NAME"
            )
    return replace(req, provider=provider, base_model=base_model, dataset=dataset)


def _one_value(jobs: list[Job], value: Callable[[Job], Any], what: str, option: str) -> Any:
    found = {value(j) for j in jobs}
    if len(found) > 1:
        listed = ", ".join(f"job {j.id}: {value(j)}" for j in jobs)
        raise EvalDataError(f"the jobs have different {what} ({listed}); name one with {option}")
    return next(iter(found))


def build_candidates(engine: Engine, req: EvalRequest) -> list[Candidate]:
    candidates: list[Candidate] = []
    needs_base = req.zero_shot or req.few_shot > 0 or req.models
    if needs_base and not (req.provider and req.base_model):
        raise EvalDataError("say which base model to compare with: --provider NAME --base MODEL")
    if req.zero_shot:
        candidates.append(Candidate("zero_shot", req.provider, req.base_model))
    if req.few_shot > 0:
        candidates.append(
            Candidate("few_shot", req.provider, req.base_model, k=req.few_shot, seed=req.seed)
        )
    for model in req.models:
        kind = "checkpoint" if ":ckpt-step-" in model else "fine_tuned"
        candidates.append(Candidate(kind, req.provider, model, base_model=req.base_model))
    candidates += job_candidates(engine, req.job_ids, req.checkpoints, req.local_weights)
    if not candidates:
        raise EvalDataError("nothing to evaluate: add --model, --job, or keep the baselines")
    return candidates


def evaluate(
    req: EvalRequest,
    *,
    engine: Engine,
    provider_for: Callable[[str], Provider] | None = None,
    on_event: Callable[[str], None] = lambda _: None,
    candidates: list[Candidate] | None = None,
) -> list[EvalRun]:
    """Run every candidate on the same eval set; returns the finished runs in order."""
    if provider_for is None:
        provider_for = provider_cache()
    req = with_job_defaults(engine, req)
    if req.dataset is None:
        raise EvalDataError("name the data to evaluate on: --dataset NAME (or --job ID)")
    dataset = find_dataset(engine, req.dataset)
    eval_ds = find_dataset(engine, req.eval_dataset) if req.eval_dataset is not None else dataset
    examples = eval_examples(engine, eval_ds.id, req.split)
    train = training_examples(engine, dataset.id)
    from app.datasets.store import load_examples

    labels = task_labels(load_examples(dataset, "train") + load_examples(dataset, "validation"))
    scorers = req.scorers or default_scorer_specs([e.expected for e in examples], labels)
    config = EvalConfig(
        task=req.task,
        scorers=scorers,
        labels=labels,
        dataset_id=eval_ds.id,
        eval_split=req.split,
        limit=req.limit,
        general=req.general,
        max_tokens=req.max_tokens,
        concurrency=req.concurrency,
        judge=req.judge,
    )
    candidates = candidates or build_candidates(engine, req)
    judge_provider = provider_for(req.judge["provider"]) if req.judge else None
    runs = []
    n = min(len(examples), req.limit) if req.limit else len(examples)
    for candidate in candidates:
        on_event(
            f"evaluating {candidate.label} [{candidate.provider}] on {n} examples"
            f"{' + the general set' if req.general else ''}"
        )
        run = run_eval(
            candidate,
            examples,
            _with_train(config, dataset.id),
            provider=provider_for(candidate.provider),
            engine=engine,
            train_examples=train,
            judge_provider=judge_provider,
        )
        _record_billed_deployment(engine, provider_for(candidate.provider), candidate, on_event)
        summary = run.summary or {}
        if (run.config or {}).get("simulated"):
            on_event("  (simulated: the sandbox emulator answered; nothing was billed)")
        quality = summary.get("task", {}).get("quality")
        general = (summary.get("general") or {}).get("score")
        on_event(
            f"  run {run.id}: quality {_fmt(quality)}, general {_fmt(general)}, "
            f"{summary.get('calls', 0)} calls, {summary.get('cached', 0)} cached"
            + (f" — {summary['stopped']}" if summary.get("stopped") else "")
        )
        runs.append(run)
    return runs


def _record_billed_deployment(
    engine: Engine, provider: Provider, candidate: Candidate, on_event: Callable[[str], None]
) -> None:
    """A candidate that answers only from a billed deployment (a Together fine-tune's
    dedicated endpoint, made on its first question) leaves one running after the eval:
    it is recorded as a deployment with an idle limit (``[deployments] eval_idle_stop``),
    so it is listed, costed and stopped rather than forgotten. Deploying is idempotent:
    what runs is adopted, nothing new is made."""
    if candidate.kind != "fine_tuned":
        return
    try:
        if provider.deployment_kind(candidate.model) != "dedicated":
            return
    except Exception:  # noqa: BLE001 - a plugin's bug must not fail a finished eval
        return
    from app.deployments.service import DeploymentError, deploy
    from app.settings import get_settings

    idle_s = get_settings().deployments.eval_idle_stop_s
    try:
        deployed = deploy(
            engine, candidate.model, provider=candidate.provider, idle_stop_s=idle_s, wait=False
        )
    except DeploymentError as exc:
        on_event(f"  ! its endpoint could not be recorded as a deployment: {exc}")
        return
    row = deployed.info.row
    if not deployed.existed:
        on_event(
            f"  its endpoint is billed while it runs: recorded as deployment {row.id}, "
            f"stopped after {get_settings().deployments.eval_idle_stop} without a request "
            f"(ftm deployments stop {row.id} to stop it now)"
        )


def _with_train(config: EvalConfig, train_dataset_id: int) -> EvalConfig:
    # The few-shot examples come from this dataset's training half; stored with the run
    # so a rerun draws the same ones.
    config.train_dataset_id = train_dataset_id
    return config


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def provider_cache() -> Callable[[str], Provider]:
    """Build each provider once per use-case call."""
    from app.jobs.providers import make_provider

    built: dict[str, Provider] = {}

    def get(name: str) -> Provider:
        if name not in built:
            built[name] = make_provider(name)
        return built[name]

    return get
