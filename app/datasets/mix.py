"""`ftm data mix`: mix general-purpose examples into a task dataset against forgetting.

The result is a new dataset version (added like any other, so checked, hashed, split and
token-counted the same way) whose train split holds the requested share of general
examples, by examples or by tokens; the share is of the train split, the part training
sees. The task's validation half is kept as it is: general data never enters it, so the
mixed and the unmixed fine-tunes are judged on the same held-out examples.

General examples that duplicate a task example (exactly or nearly, the same MinHash test
`ftm data check` uses) or an earlier general example are left out before choosing. The
choice is seeded, and the chosen examples are spread evenly through the task's train
examples, whose order is kept. Lineage (both parents, share, by, seed, what was achieved)
is stored in the new dataset's stats under "lineage".
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from app.datasets import minhash
from app.datasets.formats import similarity_text
from app.datasets.scan import content_bytes
from db.models import Dataset

BUILTIN = "builtin"
"""The name that picks the general set shipped with ftm."""
BUILTIN_PATH = Path(__file__).with_name("general_mix.jsonl")
BY = ("examples", "tokens")
SWAP_ROUNDS = 4


class MixError(ValueError):
    """A mix that cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class MixPlan:
    """What a mix puts where, before anything is written."""

    train: list[dict]
    """The task's train examples in their order, with the chosen general ones spread in."""
    general_positions: list[int]
    """Indices into `train` of the general examples."""
    n_general: int
    n_duplicates: int
    """General examples left out because they repeat a task (or earlier general) example."""
    task_amount: int
    general_amount: int
    """Examples or tokens (per `by`) of the task's train split and of the general part."""

    @property
    def achieved_share(self) -> float:
        return self.general_amount / (self.task_amount + self.general_amount)


@dataclass(frozen=True)
class MixResult:
    dataset: Dataset
    created: bool
    plan: MixPlan
    share: float
    by: str
    seed: int


def check_share(share: float) -> None:
    if not (0.0 < share < 1.0) or math.isnan(share):
        raise MixError(
            f"--share must be above 0 and below 1 (the general part of the train split), "
            f"got {share}; for example --share 0.1"
        )


def load_builtin() -> list[dict]:
    """The general set shipped with ftm (licence: general_mix.README.md beside it)."""
    with open(BUILTIN_PATH, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _unique_general(task: list[dict], general: list[dict], threshold: float) -> list[int]:
    """Indices of the general examples that repeat no task example and no earlier
    general one, exactly or nearly (estimated Jaccard similarity >= threshold)."""
    seen = {content_bytes(e) for e in task}
    exact_ok = []
    for i, example in enumerate(general):
        key = content_bytes(example)
        if key not in seen:
            seen.add(key)
            exact_ok.append(i)
    texts = [similarity_text(e) for e in task] + [similarity_text(general[i]) for i in exact_ok]
    pairs = minhash.near_duplicate_pairs(minhash.signatures(texts), threshold)
    # `first` is the earliest of each bucket, so the later one (a general example when it
    # lies past the task's) is the copy to leave out.
    repeated = {int(other) - len(task) for _, other, _ in pairs if other >= len(task)}
    return [i for j, i in enumerate(exact_ok) if j not in repeated]


def _pick_by_tokens(order: np.ndarray, tokens: np.ndarray, target: float) -> list[int]:
    """Examples, in `order`, whose tokens sum as close to `target` as a greedy fill and a
    few best single swaps get: each is taken when it still fits, then the gap left (less
    than any example untaken) is closed by swapping one chosen example for another."""
    chosen, total = [], 0
    for i in order:
        if total + tokens[i] <= target:
            chosen.append(int(i))
            total += int(tokens[i])
    for _ in range(SWAP_ROUNDS):
        taken = set(chosen)
        rest = np.array([int(i) for i in order if int(i) not in taken], dtype=np.int64)
        if rest.size == 0 or abs(target - total) < 0.5:
            break
        # Adding one untaken example is a swap with "nothing" (index -1, 0 tokens).
        out = np.array([-1, *chosen], dtype=np.int64)
        out_tokens = np.where(out < 0, 0, tokens[np.maximum(out, 0)])
        new_totals = total - out_tokens[:, None] + tokens[rest][None, :]
        a, b = np.unravel_index(np.argmin(np.abs(new_totals - target)), new_totals.shape)
        if abs(new_totals[a, b] - target) >= abs(total - target):
            break
        if out[a] >= 0:
            chosen.remove(int(out[a]))
        chosen.append(int(rest[b]))
        total = int(new_totals[a, b])
    return chosen


def _spread(task: list[dict], general: list[dict]) -> tuple[list[dict], list[int]]:
    """Interleave evenly: the k-th of g general examples goes where (k + 1/2) / g falls
    among the task's (j + 1/2) / n, so every stretch of the train split gets its share."""
    keys = [((j + 0.5) / len(task), 0, j) for j in range(len(task))]
    keys += [((k + 0.5) / len(general), 1, k) for k in range(len(general))]
    keys.sort()
    train = [task[j] if kind == 0 else general[j] for _, kind, j in keys]
    return train, [pos for pos, (_, kind, _) in enumerate(keys) if kind == 1]


def plan_mix(
    task_train: list[dict],
    task_validation: list[dict],
    general: list[dict],
    *,
    share: float,
    by: str = "examples",
    seed: int = 0,
    count_tokens=None,
    task_tokens: int | None = None,
    threshold: float = 0.85,
    general_name: str = "the general set",
) -> MixPlan:
    """Choose and place the general examples; nothing is written.

    `count_tokens(example) -> int` and the task train split's `task_tokens` are needed
    when `by` is "tokens".

    Raises:
        MixError: share outside (0, 1), `by` unknown, or too few general examples.
    """
    check_share(share)
    if by not in BY:
        raise MixError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    if not task_train:
        raise MixError("the task dataset has no train examples to mix into")
    usable = _unique_general(task_train + task_validation, general, threshold)
    n_dup = len(general) - len(usable)
    order = np.asarray(usable, dtype=np.int64)[np.random.default_rng(seed).permutation(len(usable))]
    dropped = f" ({n_dup} more repeat task examples and were left out)" if n_dup else ""
    if by == "examples":
        task_amount = len(task_train)
        need = round(share * task_amount / (1 - share))
        if need < 1:
            raise MixError(
                f"a share of {share} of {task_amount} train examples is less than one "
                "general example; raise --share or mix by tokens"
            )
        if need > order.size:
            raise MixError(
                f"a share of {share} by examples needs {need} general examples; "
                f"{general_name} has {order.size} usable{dropped}. Lower --share, or bring "
                "a larger general dataset with --with"
            )
        chosen = [int(i) for i in order[:need]]
        general_amount = need
    else:
        tokens = np.zeros(len(general), dtype=np.int64)
        for i in usable:
            tokens[i] = count_tokens(general[i])
        task_amount = int(task_tokens)
        target = share * task_amount / (1 - share)
        if tokens.sum() < target:
            raise MixError(
                f"a share of {share} by tokens needs {math.ceil(target):,} general tokens; "
                f"{general_name} has {int(tokens.sum()):,} in {order.size} usable "
                f"examples{dropped}. Lower --share, or bring a larger general dataset "
                "with --with"
            )
        chosen = _pick_by_tokens(order, tokens, target)
        general_amount = int(tokens[chosen].sum())
    train, positions = _spread(task_train, [general[i] for i in chosen])
    return MixPlan(train, positions, len(chosen), n_dup, task_amount, general_amount)


def _write_source(rows: list[dict]) -> Path:
    """The mixed file, train then validation, kept under <FTM_HOME>/datasets/mixes/ as
    the new dataset's source (named by its content, so a rerun rewrites nothing new)."""
    from app.datasets.store import datasets_dir

    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    folder = datasets_dir() / "mixes"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def _parent(dataset: Dataset) -> dict:
    return {"id": dataset.id, "name": dataset.name, "content_hash": dataset.content_hash}


def mix_dataset(
    task: str,
    general: str = BUILTIN,
    *,
    share: float,
    by: str = "examples",
    name: str | None = None,
    seed: int = 0,
) -> MixResult:
    """Make (or find, when the same mix was made before) the mixed dataset version.

    `task` and `general` are a dataset name, id or hash prefix; `general` may be
    "builtin" for the set shipped with ftm.

    Raises:
        MixError: unknown dataset, a format that is not chat, share out of (0, 1), or
            too few general examples for the share.
    """
    from app.database import get_engine
    from app.datasets.store import add_dataset, get_dataset, load_examples, token_counts
    from app.datasets.tokencount import counter_for
    from app.settings import get_settings
    from db.engine import read_session

    check_share(share)
    with read_session(get_engine()) as session:
        try:
            task_ds = get_dataset(session, task)
        except LookupError as exc:
            raise MixError(str(exc)) from None
        try:
            general_ds = None if general == BUILTIN else get_dataset(session, general)
        except LookupError as exc:
            raise MixError(
                f"--with: {exc}; or --with {BUILTIN}, the set shipped with ftm"
            ) from None
    for role, ds in (("task", task_ds), ("general", general_ds)):
        if ds is not None and ds.format != "chat":
            raise MixError(
                f"the {role} dataset {ds.name!r} is {ds.format}; only chat datasets can be mixed"
            )
    task_train = load_examples(task_ds, "train")
    task_val = load_examples(task_ds, "validation")
    if general_ds is None:
        general_rows, general_name = load_builtin(), f"the {BUILTIN} set"
        general_parent = {"name": BUILTIN, "sha256": _file_sha256(BUILTIN_PATH)}
    else:
        general_rows = load_examples(general_ds, "train") + load_examples(general_ds, "validation")
        general_name, general_parent = repr(general_ds.name), _parent(general_ds)

    model = (task_ds.report or {}).get("model")
    counter = counter_for(model)
    task_tokens = None
    if by == "tokens":
        with read_session(get_engine()) as session:
            task_tokens = sum(token_counts(session, task_ds, counter.key, "train"))
    plan = plan_mix(
        task_train,
        task_val,
        general_rows,
        share=share,
        by=by,
        seed=seed,
        count_tokens=counter.count,
        task_tokens=task_tokens,
        threshold=get_settings().data.near_duplicate_threshold,
        general_name=general_name,
    )
    lineage = {
        "kind": "mix",
        "task": _parent(task_ds),
        "general": general_parent,
        "share": share,
        "by": by,
        "seed": seed,
        "achieved_share": plan.achieved_share,
        "n_general": plan.n_general,
        "general_duplicates_left_out": plan.n_duplicates,
        "task_amount": plan.task_amount,
        "general_amount": plan.general_amount,
        "tokenizer": counter.key if by == "tokens" else None,
    }
    source = _write_source(plan.train + task_val)
    n_train = len(plan.train)
    dataset, created = add_dataset(
        source,
        name=name or f"{task_ds.name}-mix{share:g}" + ("-tokens" if by == "tokens" else ""),
        val_fraction=task_ds.val_fraction,
        seed=task_ds.split_seed,
        model=model,
        val_indices=list(range(n_train, n_train + len(task_val))),
        lineage=lineage,
    )
    return MixResult(dataset, created, plan, share, by, seed)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_mix(dataset: Dataset) -> str | None:
    """What general data a dataset has mixed in, from its lineage, in one phrase; None for
    a dataset that is not a mix."""
    lineage = (dataset.stats or {}).get("lineage") or {}
    if lineage.get("kind") != "mix":
        return None
    return (
        f"{lineage['achieved_share']:.3f} general by {lineage['by']} "
        f"({lineage['general']['name']}, seed {lineage['seed']}) mixed into "
        f"{lineage['task']['name']!r}"
    )


def mix_note(dataset: Dataset) -> str | None:
    """The note `ftm compare` shows beside a fine-tune trained on a mix."""
    described = describe_mix(dataset)
    return f"trained on {dataset.name!r}: {described}" if described else None
