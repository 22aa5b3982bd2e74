"""Run an evaluation: every held-out example (and the general-ability set) through one
candidate, with a thread pool, retries and the inference cache; every per-example output,
score, latency, token count and cost stored in eval_results, the run's full config in
eval_runs so it can be re-run from the database alone.

Only `Provider.complete` is used, so any provider (hosted, local, a plugin) can be
evaluated the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from app.costs.money import usd
from app.evaluation import general as general_set
from app.evaluation.cache import GenerationSettings, cache_get, cache_key, cache_put
from app.evaluation.candidates import Candidate, EvalExample, draw_shots, prompt_for
from app.evaluation.judge import Judge, JudgeBudgetExhausted, JudgeError
from app.evaluation.pricing import request_cost
from app.evaluation.scorers import Scorer, ScorerError, build_scorer
from app.settings import get_settings
from db.engine import write_session
from db.models import EvalResult, EvalRun
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import ChatMessage, Completion

TASK_SUITE = "task"


class EvalError(RuntimeError):
    """The run could not complete (the provider refused, kept failing...)."""


@dataclass
class EvalConfig:
    """Everything besides the candidate that decides a run's results."""

    task: str
    scorers: list[str]
    labels: list[str] | None = None
    dataset_id: int | None = None
    eval_split: str = "validation"
    limit: int | None = None
    general: bool = True
    max_tokens: int = 256
    temperature: float = 0.0
    concurrency: int = 8
    retries: int = 3
    judge: dict | None = None
    """{provider, model, max_spend_usd} for an LLM judge, or None."""
    train_dataset_id: int | None = None
    """Where few-shot examples were drawn from (the training half of this dataset)."""

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "scorers": list(self.scorers),
            "labels": self.labels,
            "dataset_id": self.dataset_id,
            "eval_split": self.eval_split,
            "limit": self.limit,
            "general": self.general,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "concurrency": self.concurrency,
            "retries": self.retries,
            "judge": self.judge,
            "train_dataset_id": self.train_dataset_id,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvalConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_tokens=self.max_tokens, temperature=self.temperature)


@dataclass
class Answer:
    """One completion as the runner saw it."""

    output: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    cached: bool


@dataclass
class CallCounter:
    """Provider calls actually made by a run (cache hits excluded)."""

    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self) -> None:
        with self.lock:
            self.calls += 1


def provider_cache_key(provider: Provider) -> str:
    """Sandbox answers are not the real API's: cache them apart."""
    return f"{provider.name}{':sandbox' if provider.simulated else ''}"


def complete_cached(
    engine: Engine,
    provider: Provider,
    model: str,
    messages: Sequence[ChatMessage],
    settings: GenerationSettings,
    *,
    retries: int = 3,
    counter: CallCounter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """One completion through the cache, retrying what the provider says is retryable."""
    pkey = provider_cache_key(provider)
    key = cache_key(pkey, model, messages, settings)
    if settings.cacheable and (hit := cache_get(engine, key)) is not None:
        return Answer(hit.output, hit.prompt_tokens, hit.completion_tokens, None, True)
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            if counter is not None:
                counter.add()
            completion: Completion = provider.complete(
                model,
                list(messages),
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
            )
            break
        except ProviderError as exc:
            attempt += 1
            if not exc.retryable or attempt > retries:
                tries = f" after {attempt} attempts" if exc.retryable else ""
                raise EvalError(f"{provider.name} model {model}: {exc.message}{tries}") from exc
            sleep(exc.retry_after_s if exc.retry_after_s is not None else 0.5 * 2 ** (attempt - 1))
        except Exception as exc:  # a provider plugin may fail in any way: report, no traceback
            raise EvalError(f"{provider.name} model {model}: {type(exc).__name__}: {exc}") from exc
    latency = completion.latency_ms
    if latency is None:
        latency = (time.perf_counter() - started) * 1000
    return _fresh_answer(engine, key, pkey, model, completion, settings, latency)


def _fresh_answer(
    engine: Engine,
    key: str,
    pkey: str,
    model: str,
    completion: Completion,
    settings: GenerationSettings,
    latency_ms: float,
) -> Answer:
    """The answer to a prompt the provider just completed, stored in the cache first."""
    text = completion.text or ""
    if settings.cacheable:
        cache_put(
            engine,
            key,
            provider_key=pkey,
            model=model,
            output=text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
    return Answer(text, completion.prompt_tokens, completion.completion_tokens, latency_ms, False)


def prefetch_batched(
    engine: Engine,
    provider: Provider,
    model: str,
    jobs: Sequence[_Job],
    settings: GenerationSettings,
    counter: CallCounter,
    batch_size: int = 16,
) -> dict[int, Answer]:
    """Answer the uncached prompts through the provider's batched generation (the local
    provider pads and generates many prompts at once, far faster than one by one).
    Returns answers keyed by ``id(job)``; cached prompts are left to `complete_cached`."""
    pkey = provider_cache_key(provider)
    misses = []
    for job in jobs:
        key = cache_key(pkey, model, job.messages, settings)
        if not (settings.cacheable and cache_get(engine, key) is not None):
            misses.append((job, key))
    out: dict[int, Answer] = {}
    for start in range(0, len(misses), batch_size):
        chunk = misses[start : start + batch_size]
        began = time.perf_counter()
        for _ in chunk:
            counter.add()
        try:
            completions = provider.complete_batch(
                model,
                [job.messages for job, _ in chunk],
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
            )
        except ProviderError as exc:
            raise EvalError(f"{provider.name} model {model}: {exc.message}") from exc
        except Exception as exc:  # report, no traceback
            raise EvalError(f"{provider.name} model {model}: {type(exc).__name__}: {exc}") from exc
        per_prompt_ms = (time.perf_counter() - began) * 1000 / max(1, len(chunk))
        for (job, key), completion in zip(chunk, completions, strict=True):
            out[id(job)] = _fresh_answer(
                engine,
                key,
                pkey,
                model,
                completion,
                settings,
                completion.latency_ms or per_prompt_ms,
            )
    return out


@dataclass
class _Job:
    suite: str
    index: int
    messages: list[ChatMessage]
    expected: str | None
    prompt_text: str


def _general_jobs() -> list[_Job]:
    return [
        _Job(general_set.SUITE, i, [ChatMessage("user", item.prompt)], item.answer, item.prompt)
        for i, item in enumerate(general_set.general_items())
    ]


def _task_jobs(candidate: Candidate, examples: Sequence[EvalExample], shots) -> list[_Job]:
    jobs = []
    for ex in examples:
        user_turns = [m.content for m in ex.prompt if m.role == "user"]
        jobs.append(
            _Job(
                TASK_SUITE,
                ex.index,
                prompt_for(candidate, ex, shots),
                ex.expected,
                user_turns[-1] if user_turns else "",
            )
        )
    return jobs


def _build_scorers(config: EvalConfig) -> list[Scorer]:
    return [build_scorer(spec, labels=config.labels) for spec in config.scorers]


def run_eval(
    candidate: Candidate,
    examples: Sequence[EvalExample],
    config: EvalConfig,
    *,
    provider: Provider,
    engine: Engine,
    train_examples: Sequence[dict] | None = None,
    judge_provider: Provider | None = None,
    counter: CallCounter | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalRun:
    """Evaluate ``candidate`` on ``examples`` (and the general set) and store the run.

    Returns the finished `EvalRun` (status ``succeeded``, or ``stopped`` when the judge's
    spending cap was reached). Raises `EvalError` when the provider fails for good; the
    run is then stored as ``failed`` with the reason.
    """
    scorers = _build_scorers(config)  # fail on a bad scorer before any spending
    if config.limit is not None:
        examples = list(examples)[: config.limit]
    shots = None
    if candidate.kind == "few_shot":
        shots = draw_shots(train_examples or [], candidate.k, candidate.seed)
    judge = Judge.from_config(config.judge, judge_provider, engine) if config.judge else None
    jobs = _task_jobs(candidate, examples, shots)
    if config.general:
        # The general set is asked plainly, without task shots: a few-shot candidate's
        # general ability is its base model's.
        jobs += _general_jobs()

    with write_session(engine) as session:
        run = EvalRun(
            task=config.task,
            dataset_id=config.dataset_id,
            eval_split=config.eval_split,
            candidate_kind=candidate.kind,
            provider=candidate.provider,
            # A path under the storage root is kept as its reference (db.storage).
            model=get_settings().file_store.ref_for(candidate.model) or candidate.model,
            job_id=candidate.job_id,
            config={
                "candidate": candidate.to_dict(),
                **config.to_dict(),
                # Sandbox answers and costs are simulated: say so wherever they are shown.
                "simulated": provider.simulated,
            },
            status="running",
        )
        session.add(run)
    counter = counter or CallCounter()
    settings = config.generation
    stop = threading.Event()
    general_items = general_set.general_items()

    prefetched: dict[int, Answer] = {}
    failure: EvalError | None = None
    if provider.capabilities.batch_completion:
        try:
            prefetched = prefetch_batched(
                engine, provider, candidate.model, jobs, settings, counter
            )
        except EvalError as exc:
            failure = exc
            stop.set()

    def work(job: _Job) -> tuple[_Job, Answer, dict, float | None] | None:
        if stop.is_set():
            return None
        answer = prefetched.get(id(job)) or complete_cached(
            engine,
            provider,
            candidate.model,
            job.messages,
            settings,
            retries=config.retries,
            counter=counter,
        )
        if job.suite == general_set.SUITE:
            scores = {"general": general_items[job.index].score(answer.output)}
        else:
            scores = {s.spec: s.score(answer.output, job.expected) for s in scorers}
            if judge is not None:
                try:
                    scores["judge"] = judge.score(job.prompt_text, job.expected, answer.output)
                except JudgeBudgetExhausted:
                    stop.set()
                    return None
        cost = request_cost(
            candidate.provider,
            candidate.model,
            answer.prompt_tokens,
            answer.completion_tokens,
            base_model=candidate.base_model,
        )
        return job, answer, scores, cost

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, config.concurrency)) as pool:
        for result in pool.map(_guard(work, stop), jobs):
            if isinstance(result, EvalError):
                failure = failure or result
                continue
            if result is None:
                continue
            job, answer, scores, cost = result
            with write_session(engine) as session:
                session.add(
                    EvalResult(
                        run_id=run.id,
                        suite=job.suite,
                        example_index=job.index,
                        expected=job.expected,
                        output=answer.output,
                        scores=scores,
                        latency_ms=answer.latency_ms,
                        prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens,
                        cost_usd=cost,
                        cached=answer.cached,
                    )
                )
            done += 1
            if on_progress:
                on_progress(done, len(jobs))

    from app.evaluation.summary import summarize_run

    summary = summarize_run(engine, run.id, scorers, calls=counter.calls)
    if judge is not None:
        summary["judge"] = judge.report()
    status = "succeeded"
    if failure is not None:
        status, summary["error"] = "failed", str(failure)
    elif stop.is_set():
        status = "stopped"
        summary["stopped"] = (
            f"the judge's spending cap ({usd(judge.max_spend_usd)}) was reached after "
            f"{summary['task']['n']} of {len(examples)} examples"
        )
    with write_session(engine) as session:
        stored = session.get(EvalRun, run.id)
        stored.status = status
        stored.summary = summary
        stored.finished_at = datetime.now(UTC)
        session.add(stored)
        run = stored
    if failure is not None:
        raise failure
    return run


def _guard(work, stop: threading.Event):
    """Turn a failure into a value (so the pool drains and the run is stored as failed)
    and stop the other workers."""

    def guarded(job):
        try:
            return work(job)
        except EvalError as exc:
            stop.set()
            return exc
        except (ScorerError, JudgeError) as exc:  # a user scorer or the judge failed
            stop.set()
            return EvalError(f"scoring example {job.index} ({job.suite}): {exc}")

    return guarded


def rerun_eval(
    run_id: int,
    *,
    provider: Provider,
    engine: Engine,
    examples: Sequence[EvalExample] | None = None,
    train_examples: Sequence[dict] | None = None,
    judge_provider: Provider | None = None,
) -> EvalRun:
    """Run again exactly what run ``run_id`` ran, from its stored config (a new run; every
    completion already seen comes from the cache). Examples are reloaded from the run's
    dataset unless given."""
    from db.engine import read_session

    with read_session(engine) as session:
        old = session.get(EvalRun, run_id)
        if old is None:
            raise EvalError(f"no eval run with id {run_id}")
    stored = dict(old.config or {})
    candidate = Candidate.from_dict(stored.pop("candidate"))
    config = EvalConfig.from_dict(stored)
    if examples is None or (candidate.kind == "few_shot" and train_examples is None):
        from app.evaluation.data import eval_examples, training_examples

        if examples is None:
            examples = eval_examples(engine, config.dataset_id, config.eval_split)
        if candidate.kind == "few_shot" and train_examples is None:
            train_examples = training_examples(engine, config.train_dataset_id or config.dataset_id)
    return run_eval(
        candidate,
        examples,
        config,
        provider=provider,
        engine=engine,
        train_examples=train_examples,
        judge_provider=judge_provider,
    )
