"""What the estimates need from a dataset: its exact per-example token counts (from the
database, as numpy arrays) and the shape of one request (prompt and reply tokens, and how
many few-shot examples a base model would need), measured on the dataset itself."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlmodel import Session, select

from app.costs.errors import CostError
from db.models import Dataset, TokenCount
from db.storage import StorageMissing

DEFAULT_TOKENIZER = "tiktoken:o200k_base"
PROFILE_SAMPLE = 256
"""Examples read to measure a request's shape: enough for stable means, cheap to read."""
PROFILE_VERSION = 2
"""Bump when the profile's measurement changes: cached profiles are then recomputed."""
MAX_LABELS_FOR_FEW_SHOT = 20
DEFAULT_K = 3
# The data-prep recipe's accounting: 3 tokens per message, 3 to prime the reply.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3


@dataclass(frozen=True)
class TokenCounts:
    counts: np.ndarray
    tokenizer: str
    """The tokenizer the counts are exact for."""
    approximate_for: str | None = None
    """Set when the counts stand in for another tokenizer's (no exact counts stored)."""


def token_counts(
    session: Session,
    dataset: Dataset,
    tokenizer: str = DEFAULT_TOKENIZER,
    split: str = "train",
    *,
    fallback: bool = False,
) -> TokenCounts:
    """The dataset's per-example token counts as a uint32 array.

    With ``fallback``, counts of the default tokenizer stand in when ``tokenizer`` has none
    (marked as approximate).
    """
    rows = {
        r.tokenizer: r
        for r in session.exec(
            select(TokenCount).where(TokenCount.dataset_id == dataset.id, TokenCount.split == split)
        )
    }
    row = rows.get(tokenizer)
    approx = None
    if row is None and fallback and rows:
        row = rows.get(DEFAULT_TOKENIZER) or next(iter(rows.values()))
        approx = tokenizer
    if row is None:
        # Nothing stored stands in (an older ftm, an interrupted intake): count the
        # dataset's own file again with intake's counter.
        try:
            recounted = _recount(dataset, split)
        except StorageMissing as exc:
            raise CostError(
                f"dataset {dataset.name!r} (id {dataset.id}) has no {tokenizer} token counts "
                f"for its {split} split to estimate from, and its file cannot be read to "
                f"count them again: {exc}"
            ) from None
        if recounted is None:
            raise CostError(
                f"dataset {dataset.name!r} (id {dataset.id}) has no {tokenizer} token counts "
                f"for its {split} split, and its file cannot be counted; re-add the dataset"
            )
        if recounted.tokenizer == tokenizer:
            return recounted
        if fallback:
            return TokenCounts(recounted.counts, recounted.tokenizer, tokenizer)
        raise CostError(
            f"dataset {dataset.name!r} (id {dataset.id}) has no {tokenizer} token "
            f"counts for its {split} split; ftm counts {recounted.tokenizer}"
        )
    counts = np.frombuffer(row.counts, dtype="<u4")
    return TokenCounts(counts, row.tokenizer, approx)


def _recount(dataset: Dataset, split: str) -> TokenCounts | None:
    """Counts intake did not record, made now from the dataset's own file with intake's
    counter; None when it cannot be counted. Raises StorageMissing when it is gone."""
    from app.datasets.check import check_file
    from app.datasets.store import dataset_file

    path = dataset_file(dataset, split)
    arrays = check_file(path, val_fraction=0.0).arrays
    if arrays is None:
        return None
    return TokenCounts(np.asarray(arrays.tokens, dtype="<u4"), arrays.tokenizer)


@dataclass(frozen=True)
class PromptProfile:
    """One request as the dataset shapes it (means over a sample of examples)."""

    sampled: int
    system_tokens: float
    prompt_tokens: float
    """The short prompt: system + user messages + reply priming."""
    output_tokens: float
    shot_tokens: float
    """One few-shot example in a prompt (its user and assistant messages), median."""
    k: int
    k_reason: str
    labels: list[str] = field(default_factory=list)

    @property
    def few_shot_prefix_tokens(self) -> float:
        """The part of a few-shot prompt that repeats on every request."""
        return self.system_tokens + self.k * self.shot_tokens

    @property
    def few_shot_prompt_tokens(self) -> float:
        return self.prompt_tokens + self.k * self.shot_tokens

    def to_dict(self) -> dict:
        return asdict(self) | {"few_shot_prompt_tokens": self.few_shot_prompt_tokens}


def _split_example(example: dict) -> tuple[list[dict], dict | None]:
    """(prompt messages, the reply) of a chat or preference example."""
    if "messages" in example:
        msgs = [m for m in example["messages"] if isinstance(m, dict)]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None:
            return msgs, None
        return msgs[:last], msgs[last]
    if "input" in example:  # preference (DPO): the preferred reply is the output
        prompt = example["input"].get("messages", [])
        out = (example.get("preferred_output") or [None])[0]
        return prompt, out
    return [], None


def _text(message: dict | None) -> str:
    if not message:
        return ""
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else json.dumps(content or "")


@lru_cache(maxsize=32)
def _profile_cached(path: str, mtime: float, encoding_name: str, default_k: int) -> PromptProfile:
    from app.tokens import get_encoding

    enc = get_encoding(encoding_name)
    systems, prompts, outputs, shots, replies = [], [], [], [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= PROFILE_SAMPLE:
                break
            try:
                example = json.loads(line)
            except json.JSONDecodeError:
                continue
            prompt, reply = _split_example(example)

            def message_tokens(m: dict) -> int:  # the recipe: 3 + role + content (+ name)
                n = TOKENS_PER_MESSAGE + len(
                    enc.encode(str(m.get("role", "")), disallowed_special=())
                )
                n += len(enc.encode(_text(m), disallowed_special=()))
                if m.get("name"):
                    n += 1 + len(enc.encode(str(m["name"]), disallowed_special=()))
                return n

            sys_tokens = sum(message_tokens(m) for m in prompt if m.get("role") == "system")
            other = sum(message_tokens(m) for m in prompt if m.get("role") != "system")
            out_text = _text(reply)
            out = len(enc.encode(out_text, disallowed_special=()))  # what the model generates
            systems.append(sys_tokens)
            prompts.append(sys_tokens + other + REPLY_PRIMING)
            outputs.append(out)
            shots.append(other + (message_tokens(reply) if reply else 0))
            replies.append(out_text.strip())
    if not prompts:
        raise CostError(f"{path}: no readable examples to measure a request's size")
    distinct = sorted(set(replies))
    # A classification-like task (few distinct replies) needs one example per label;
    # otherwise a few examples show the format.
    if len(distinct) <= MAX_LABELS_FOR_FEW_SHOT and len(distinct) <= len(replies) / 2:
        k, reason = (
            max(2, len(distinct)),
            f"one example per label ({len(distinct)} distinct replies)",
        )
        labels = distinct
    else:
        k, reason, labels = default_k, f"default k={default_k} (free-form replies)", []
    return PromptProfile(
        sampled=len(prompts),
        system_tokens=statistics.fmean(systems),
        prompt_tokens=statistics.fmean(prompts),
        output_tokens=statistics.fmean(outputs),
        shot_tokens=float(statistics.median(shots)),
        k=k,
        k_reason=reason,
        labels=labels,
    )


def _profile_on_disk(path: Path, encoding_name: str, default_k: int) -> PromptProfile:
    """The profile, cached in ``<home>/cache/cost-profiles`` so a new process does not pay
    for loading the tokenizer again (the file's identity is in the key)."""
    from hashlib import sha256

    from app.settings import get_settings

    stat = path.stat()
    key = sha256(
        f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{encoding_name}|{default_k}|"
        f"{PROFILE_SAMPLE}|{PROFILE_VERSION}".encode()
    ).hexdigest()[:32]
    cache_file = get_settings().home / "cache" / "cost-profiles" / f"{key}.json"
    try:
        return PromptProfile(**json.loads(cache_file.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    profile = _profile_cached(str(path), stat.st_mtime, encoding_name, default_k)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(profile)))
        tmp.replace(cache_file)
    except OSError:
        pass  # a read-only home only loses the cache
    return profile


def prompt_profile(
    dataset: Dataset,
    encoding_name: str = "o200k_base",
    *,
    k: int | None = None,
    default_k: int = DEFAULT_K,
) -> PromptProfile:
    """Measure a request's shape on the first examples of the dataset's train split."""
    from app.datasets.store import dataset_file

    try:
        path = dataset_file(dataset, "train")
    except StorageMissing as exc:
        raise CostError(str(exc)) from None
    profile = _profile_on_disk(path, encoding_name, default_k)
    if k is not None:
        from dataclasses import replace

        profile = replace(profile, k=k, k_reason=f"given (k={k})")
    return profile


def find_dataset(session: Session, name_or_id: str) -> Dataset:
    """A dataset by id, name (the newest version) or content-hash prefix."""
    from sqlmodel import col

    ds = None
    if name_or_id.isdigit():
        ds = session.get(Dataset, int(name_or_id))
    if ds is None:
        ds = session.exec(
            select(Dataset)
            .where(Dataset.name == name_or_id)
            .order_by(col(Dataset.created_at).desc(), col(Dataset.id).desc())
        ).first()
    if ds is None and len(name_or_id) >= 6:
        ds = session.exec(
            select(Dataset).where(col(Dataset.content_hash).startswith(name_or_id.lower()))
        ).first()
    if ds is None:
        names = sorted(set(session.exec(select(Dataset.name)).all()))
        known = ", ".join(names[:20]) if names else "none yet (add one with `ftm data add FILE`)"
        raise CostError(f"no dataset {name_or_id!r}; known datasets: {known}")
    return ds


def local_model_counts(session: Session, dataset: Dataset, model: str) -> TokenCounts:
    """Token counts for a local model's own tokenizer.

    A model directory's tokenizer is available offline, so its exact counts are computed
    (and stored by dataset intake) on first use; a hub id's is not, so the stored default
    counts stand in, marked approximate.
    """
    tokenizer = f"hf:{model}"
    path = Path(model).expanduser()
    if path.is_dir() and (path / "tokenizer_config.json").is_file():
        try:
            from app.datasets.store import token_counts as intake_counts

            counts = intake_counts(session, dataset, f"hf:{path}", "train")
            return TokenCounts(np.frombuffer(counts.tobytes(), dtype="=u4").copy(), tokenizer)
        except Exception:  # noqa: BLE001 - any tokenizer trouble: fall back, marked approximate
            session.rollback()
    return token_counts(session, dataset, tokenizer, fallback=True)
