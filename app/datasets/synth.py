"""`ftm data synth`: new training examples from a teacher model, kept only when they pass
what `ftm data add` would check, recorded as a new dataset version with their lineage.

Seeds come from the source dataset's train split only, never its validation half. Each
request shows the teacher a few seeds (rotated by the run seed and the request number)
and, for a categorical task, the label the new example must have. A reply is kept when
it parses as an example of the source's format, breaks no format rule, fits the token
limit, has a label of the task's label set (within that label's quota), and is not a
near-duplicate of a validation example, a seed or an example kept before — the same
MinHash estimate and threshold `ftm data check` uses. Everything dropped is counted by
reason.

Completions go through the evaluation's inference cache keyed with the run seed, so a
rerun with the same settings is answered from the cache and costs nothing. Kept
examples are written to disk as they come, so an interrupted run (Ctrl-C) still becomes
a dataset of what it made.

Without a source dataset, a task description (``--task``) stands in for the seeds: each
prompt describes the task, and the label set (``--labels``) comes from the user. Kept
examples are then deduplicated only among themselves. Topics (``--topic``) spread the
count evenly: each prompt names the topic furthest from its quota, and an example kept
counts toward the topic its prompt named.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import Engine

from app.datasets.formats import (
    PREFERENCE,
    detect_format,
    label_of,
    normalize,
    similarity_text,
    validate_example,
)
from app.datasets.labels import categorical_labels
from app.datasets.minhash import signatures, similarity
from app.datasets.scan import content_bytes
from app.datasets.synth_prompt import (
    TASK_TEMPLATE_VERSION,
    TEMPLATE_VERSION,
    build_messages,
    parse_example,
)
from app.datasets.tokencount import TokenCounter, counter_for
from app.evaluation.cache import GenerationSettings
from providers.base import Provider
from providers.types import ChatMessage

SEEDS_PER_PROMPT = 3
REPLY_TOKENS_WITHOUT_SEEDS = 200
"""The estimate's reply length when there are no seeds to measure (``--task``)."""

# Why a reply was not kept; the order is the order of the checks.
UNPARSEABLE = "unparseable"
FORMAT = "format"
TOO_LONG = "too_long"
NOT_A_LABEL = "label_not_in_set"
FAILS_SCORER = "fails_scorer_format"
OVER_QUOTA = "label_quota_full"
LEAKS_VALIDATION = "near_duplicate_of_validation"
DUPLICATES_SEED = "near_duplicate_of_seed"
DUPLICATES_KEPT = "near_duplicate_of_generated"


class SynthError(ValueError):
    """Synthesis cannot start or made nothing; the message says what to do."""


@dataclass(frozen=True)
class SynthSettings:
    count: int
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 1024
    max_attempts: int | None = None
    """Requests at most; default three per wanted example."""
    max_spend: float | None = None
    scorers: tuple[str, ...] = ()
    """Format scorer specs (``json``, ``json_schema:PATH``, ``regex:PATTERN``) every reply
    must pass, besides those the task implies."""
    topics: tuple[str, ...] = ()
    """The count is spread evenly over these; each prompt names its topic."""

    @property
    def attempts(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 3 * self.count

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed
        )


@dataclass
class SynthProgress:
    """Where a run stands; also its final result."""

    requested: int
    attempts: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    cache_hits: int = 0
    spend_usd: float | None = 0.0
    kept_by_label: Counter = field(default_factory=Counter)
    kept_by_topic: Counter = field(default_factory=Counter)
    stopped: str | None = None
    """Why the run ended early: interrupted, spend cap, out of attempts."""

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "attempts": self.attempts,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "cache_hits": self.cache_hits,
            "spend_usd": self.spend_usd,
            "kept_by_label": dict(sorted(self.kept_by_label.items())) or None,
            "kept_by_topic": dict(sorted(self.kept_by_topic.items())) or None,
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class Estimate:
    prompt_tokens_per_request: float
    completion_tokens_per_request: float
    usd: float | None
    """For one request per wanted example; None when the teacher has no per-token price
    in the catalog."""
    usd_max: float | None = None
    """For every allowed attempt (dropped replies are paid for too)."""

    def as_dict(self) -> dict:
        return asdict(self)


def balanced_quotas(labels: list[str], count: int) -> dict[str, int]:
    """``count`` split evenly over the labels (sorted; the first ones take the remainder)."""
    ordered = sorted(set(labels))
    base, extra = divmod(count, len(ordered))
    return {label: base + (1 if i < extra else 0) for i, label in enumerate(ordered)}


def _quota_shortfall(quotas: dict[str, int] | None, kept: Counter) -> dict[str, int]:
    if quotas is None:
        return {}
    return {key: q - kept[key] for key, q in quotas.items() if q > kept[key]}


def _furthest(quotas: dict[str, int] | None, kept: Counter) -> str | None:
    """The key furthest from its quota (ties: alphabetical)."""
    if quotas is None:
        return None
    return max(quotas, key=lambda key: quotas[key] - kept[key])  # max keeps the first: a-z


class Synthesizer:
    """One synthesis run over a source dataset's splits (or, with ``task``, over a task
    description and no seeds), request by request."""

    def __init__(
        self,
        train: list[dict],
        validation: list[dict],
        settings: SynthSettings,
        *,
        threshold: float,
        counter: TokenCounter | None = None,
        task: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        if task is not None and not task.strip():
            raise SynthError("--task is empty; describe the task the examples are for")
        if task is None and not train:
            raise SynthError("the source dataset has no train examples to use as seeds")
        if labels is not None and len(set(labels)) < 2:
            raise SynthError(f"--labels needs at least two labels, got {list(labels)!r}")
        if len(set(settings.topics)) != len(settings.topics) or not all(
            t.strip() for t in settings.topics
        ):
            raise SynthError(
                f"--topic values must be distinct and non-empty, got {settings.topics!r}"
            )
        if any("messages" not in e for e in train):
            raise SynthError(
                "ftm data synth makes chat examples; this dataset is in preference "
                "(DPO) form. Use a chat or instruction dataset as the source."
            )
        self.train = train
        self.task = task
        self.settings = settings
        self.threshold = threshold
        self.counter = counter or counter_for(None)
        seed_labels = None if task is not None else categorical_labels(train)
        labels = list(labels) if labels is not None else seed_labels
        self.quotas = balanced_quotas(labels, settings.count) if labels else None
        self.topic_quotas = (
            balanced_quotas(list(settings.topics), settings.count) if settings.topics else None
        )
        self.scorers = format_scorers(train, labels, settings.scorers)
        self._by_label: dict[str, list[dict]] = {}
        for example, label in zip(train, seed_labels or [], strict=False):
            self._by_label.setdefault(label, []).append(example)
        self._sigs = {
            LEAKS_VALIDATION: _sigs(validation),
            DUPLICATES_SEED: _sigs(train),
        }
        self._exact = {
            LEAKS_VALIDATION: {content_bytes(e) for e in validation},
            DUPLICATES_SEED: {content_bytes(e) for e in train},
        }
        self._kept_sigs: list[np.ndarray] = []
        self._kept_exact: set[bytes] = set()
        self.progress = SynthProgress(requested=settings.count)

    # -- the prompts ----------------------------------------------------------------

    @property
    def template(self) -> str:
        return TASK_TEMPLATE_VERSION if self.task is not None else TEMPLATE_VERSION

    def target_label(self) -> str | None:
        """The label whose quota is furthest from met (ties: alphabetical)."""
        return _furthest(self.quotas, self.progress.kept_by_label)

    def target_topic(self) -> str | None:
        """The topic whose quota is furthest from met (ties: alphabetical)."""
        return _furthest(self.topic_quotas, self.progress.kept_by_topic)

    def prompt(self, index: int, label: str | None, topic: str | None = None) -> list[ChatMessage]:
        """Request ``index``'s conversation: seeds drawn by the run seed and the index (or
        the task's description when there are no seeds)."""
        if self.task is not None:
            return build_messages([], index, label, topic, task=self.task)
        pool = self._by_label.get(label, self.train) if label is not None else self.train
        rng = random.Random(f"{self.settings.seed}:{index}")
        seeds = rng.sample(pool, min(SEEDS_PER_PROMPT, len(pool)))
        return build_messages(seeds, index, label, topic)

    # -- the checks -----------------------------------------------------------------

    def judge(self, reply: str) -> tuple[dict | None, str | None]:
        """(the normalized example, None) when kept, else (None, the reason)."""
        raw = parse_example(reply)
        if raw is None:
            return None, UNPARSEABLE
        fmt = detect_format(raw)
        if fmt is None or fmt == PREFERENCE or validate_example(raw, fmt):
            return None, FORMAT
        example = normalize(raw, fmt)
        if self.counter.limit is not None and self.counter.count(example) > self.counter.limit:
            return None, TOO_LONG
        if self.quotas is not None:
            got = label_of(example)
            if got not in self.quotas:
                return None, NOT_A_LABEL
            if self.progress.kept_by_label[got] >= self.quotas[got]:
                return None, OVER_QUOTA
        reply = final_reply(example)
        if any(scorer.score(reply, None) < 1.0 for scorer in self.scorers):
            return None, FAILS_SCORER
        exact = content_bytes(example)
        sig = _sigs([example])[0]
        for reason in (LEAKS_VALIDATION, DUPLICATES_SEED):
            if exact in self._exact[reason] or _near(sig, self._sigs[reason], self.threshold):
                return None, reason
        kept = np.stack(self._kept_sigs) if self._kept_sigs else None
        if exact in self._kept_exact or (kept is not None and _near(sig, kept, self.threshold)):
            return None, DUPLICATES_KEPT
        return example, None

    def keep(self, example: dict, topic: str | None = None) -> None:
        """Count a judged example in (toward ``topic``, the one its prompt named), and
        compare later replies with it too."""
        self._kept_sigs.append(_sigs([example])[0])
        self._kept_exact.add(content_bytes(example))
        self.progress.kept += 1
        if self.quotas is not None:
            self.progress.kept_by_label[label_of(example)] += 1
        if topic is not None:
            self.progress.kept_by_topic[topic] += 1

    def shortfall(self) -> dict[str, int]:
        """Per label, how many the quota still misses."""
        return _quota_shortfall(self.quotas, self.progress.kept_by_label)

    def topic_shortfall(self) -> dict[str, int]:
        """Per topic, how many the quota still misses."""
        return _quota_shortfall(self.topic_quotas, self.progress.kept_by_topic)


def final_reply(example: dict) -> str:
    """The text of an example's last assistant message (what the task's scorers read)."""
    for message in reversed(example["messages"]):
        if message.get("role") == "assistant":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def format_scorers(train: list[dict], labels: list[str] | None, specs: Sequence[str]):
    """The format scorers a new example's reply must pass: those named (``--scorer``,
    e.g. ``json_schema:PATH``), and JSON validity when every seed's reply is JSON, as the
    evaluation would score the task by default."""
    from app.evaluation.scorers import ScorerError, build_scorer, default_scorer_specs

    wanted = list(specs)
    wanted += [
        spec
        for spec in default_scorer_specs([final_reply(e) for e in train], labels)
        if spec not in wanted
    ]
    try:
        built = [build_scorer(spec, labels=labels) for spec in wanted]
    except ScorerError as exc:
        raise SynthError(str(exc)) from None
    for spec, scorer in zip(wanted, built, strict=True):
        if spec in specs and scorer.kind != "format":
            raise SynthError(
                f"scorer {spec!r} judges answers, not their form; give a format scorer: "
                "json, json_schema:PATH or regex:PATTERN"
            )
    return [scorer for scorer in built if scorer.kind == "format"]


def _sigs(examples: list[dict]) -> np.ndarray:
    return signatures([similarity_text(e) for e in examples])


def _near(sig: np.ndarray, others: np.ndarray, threshold: float) -> bool:
    return bool(others.size) and bool((similarity(others, sig[None, :]) >= threshold).any())


# -- spend ---------------------------------------------------------------------------


def estimate(synth: Synthesizer, provider: Provider, model: str) -> Estimate:
    """Tokens and USD of the wanted count of requests, measured on the first prompts
    (their exact token counts) and the seeds (a reply is about one example long)."""
    from app.evaluation.pricing import token_price

    sample = range(min(8, synth.settings.count))
    prompt_tokens = np.mean(
        [
            synth.counter.count(
                {
                    "messages": [
                        asdict(m)
                        for m in synth.prompt(i, synth.target_label(), synth.target_topic())
                    ]
                }
            )
            for i in sample
        ]
    )
    reply_tokens = (
        float(np.mean([synth.counter.count(e) for e in synth.train[:200]]))
        if synth.train
        else float(REPLY_TOKENS_WITHOUT_SEEDS)
    )
    price = token_price(provider.name, model)
    if price is None:
        return Estimate(float(prompt_tokens), reply_tokens, None)
    per_request = float(prompt_tokens * price.input + reply_tokens * price.output) / 1e6
    return Estimate(
        float(prompt_tokens),
        reply_tokens,
        min(synth.settings.count, synth.settings.attempts) * per_request,
        synth.settings.attempts * per_request,
    )


# -- the run -------------------------------------------------------------------------


def run(
    synth: Synthesizer,
    provider: Provider,
    model: str,
    out: Path,
    *,
    engine: Engine,
    on_progress: Callable[[SynthProgress], None] | None = None,
) -> SynthProgress:
    """Ask the teacher until the count is kept, attempts run out, the spend cap is reached
    or the user interrupts; kept examples are appended to ``out`` as they come."""
    from app.evaluation.pricing import request_cost
    from app.evaluation.runner import EvalError, complete_cached

    settings, progress = synth.settings, synth.progress
    generation = settings.generation
    try:
        with open(out, "ab") as file:
            while progress.kept < settings.count:
                if progress.attempts >= settings.attempts:
                    progress.stopped = "out of attempts"
                    break
                if _next_would_pass_cap(progress, settings.max_spend):
                    progress.stopped = "spend cap reached"
                    break
                label, topic = synth.target_label(), synth.target_topic()
                messages = synth.prompt(progress.attempts, label, topic)
                try:
                    answer = complete_cached(engine, provider, model, messages, generation)
                except EvalError as exc:  # retried already when retryable: give up, keep
                    progress.stopped = f"the teacher failed: {exc}"
                    break
                progress.attempts += 1
                if answer.cached:
                    progress.cache_hits += 1
                else:
                    cost = request_cost(
                        provider.name, model, answer.prompt_tokens, answer.completion_tokens
                    )
                    progress.spend_usd = (
                        None
                        if cost is None or progress.spend_usd is None
                        else progress.spend_usd + cost
                    )
                example, reason = synth.judge(answer.output)
                if example is None:
                    progress.dropped[reason] += 1
                else:
                    synth.keep(example, topic)
                    file.write(orjson.dumps(example) + b"\n")
                    file.flush()
                if on_progress is not None:
                    on_progress(progress)
    except KeyboardInterrupt:
        progress.stopped = "interrupted"
    return progress


def _next_would_pass_cap(progress: SynthProgress, cap: float | None) -> bool:
    """Whether one more request, at the mean price of those paid so far, would take the
    spend past ``cap`` (cached answers are free and do not count)."""
    paid = progress.attempts - progress.cache_hits
    if cap is None or progress.spend_usd is None or paid == 0:
        return False
    return progress.spend_usd + progress.spend_usd / paid > cap


def lineage(source, provider: Provider, model: str, synth: Synthesizer, est: Estimate) -> dict:
    """What the new dataset version records about how it was made: the parent dataset, or
    (``--task``, ``source`` None) the task's description."""
    return {
        "kind": "synth",
        "parent_dataset_id": source.id if source is not None else None,
        "parent_dataset": source.name if source is not None else None,
        "parent_content_hash": source.content_hash if source is not None else None,
        "task": synth.task,
        "teacher": {"provider": provider.name, "model": model, "simulated": provider.simulated},
        "template": synth.template,
        "settings": asdict(synth.settings)
        | {"seeds_per_prompt": 0 if synth.task is not None else SEEDS_PER_PROMPT},
        "quotas": synth.quotas,
        "shortfall": synth.shortfall() or None,
        "topic_quotas": synth.topic_quotas,
        "topic_shortfall": synth.topic_shortfall() or None,
        "estimate": est.as_dict(),
        "result": synth.progress.as_dict(),
    }
