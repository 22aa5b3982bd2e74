"""Datasets in the database: add a checked file as a versioned dataset, look one up, read
its examples and its per-example token counts.

A dataset is identified by the sha256 of its normalized examples (instruction examples
become chat; every example is written as canonical JSON). Its normalized train.jsonl and
validation.jsonl live under ``datasets/<hash>/`` of the storage root (`db.storage`; by
default the home directory), and the database keeps that reference, not a path of this
machine: `dataset_file` finds the files wherever this machine's root is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from array import array
from dataclasses import asdict
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.datasets.check import Progress, check_file
from app.datasets.formats import detect_format, normalize
from app.datasets.report import CheckReport
from app.datasets.scan import BOM, content_bytes, iter_range
from db.models import Dataset, TokenCount
from db.storage import StorageMissing, is_ref

SPLITS = ("train", "validation")


class DatasetRejected(ValueError):
    """The file has errors; `report` says which."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        first = report.first_error()
        where = f"line {first.line}: " if first and first.line else ""
        n = sum(
            c
            for cat, c in report.counts_by_category.items()
            if cat in {p.category for p in report.errors}
        )
        super().__init__(
            f"{report.path} has {n} error(s), so it was not added; first: {where}"
            f"{first.category if first else '?'}: {first.message if first else ''}. "
            f"See them all with: ftm data check {report.path}"
        )


def datasets_dir() -> Path:
    """Where dataset directories are written on this machine (under the storage root, or
    its local mirror for a URL root)."""
    from app.settings import get_settings

    return get_settings().file_store.area("datasets")


def dataset_file(dataset: Dataset, split: str) -> Path:
    """The local path of one split's normalized file (fetched from a URL root first).

    Raises:
        StorageMissing: the file is not under this machine's storage root; the message
            names the dataset, the file and the root, and says what to set.
    """
    from app.settings import get_settings

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    store = get_settings().file_store
    name = f"dataset {dataset.name!r}"
    if is_ref(dataset.data_dir):
        return store.local_path(f"{dataset.data_dir}/{split}.jsonl", what=name)
    path = Path(dataset.data_dir) / f"{split}.jsonl"  # recorded outside the root
    if not path.exists():
        raise StorageMissing(
            f"{name}'s file {path} is missing; restore it there, or re-add the dataset "
            f"with: ftm data add {dataset.source_path}"
        )
    return path


def dedupe_file(report: CheckReport) -> Path:
    """Write `<name>.dedup<ext>` beside the checked file, without the lines a dedupe drops
    (every copy after the first of each exact or near-duplicate cluster). The original is
    never modified."""
    source = Path(report.path)
    target = source.with_name(f"{source.stem}.dedup{source.suffix or '.jsonl'}")
    drop = set(report.arrays.dropped_by_dedupe.tolist()) if report.arrays is not None else set()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(source, "rb") as src, open(tmp, "wb") as out:
        for lineno, line in enumerate(src, start=1):
            if lineno not in drop:
                out.write(line)
    os.replace(tmp, target)
    return target


def _write_normalized(report: CheckReport, work_dir: Path) -> str:
    """Write train.jsonl / validation.jsonl into `work_dir`; return the content hash."""
    arrays = report.arrays
    wanted = set(arrays.lines.tolist())
    in_val = np.zeros(arrays.lines.size, bool)
    in_val[arrays.val_indices] = True
    digest = hashlib.sha256()
    ordinal = 0
    size = Path(report.path).stat().st_size
    with (
        open(work_dir / "train.jsonl", "wb") as train,
        open(work_dir / "validation.jsonl", "wb") as val,
    ):
        for lineno, raw in enumerate(iter_range(report.path, 0, size), start=1):
            if lineno not in wanted:
                continue
            line = raw[len(BOM) :] if lineno == 1 and raw.startswith(BOM) else raw
            example = orjson.loads(line)
            data = content_bytes(normalize(example, detect_format(example))) + b"\n"
            digest.update(data)
            (val if in_val[ordinal] else train).write(data)
            ordinal += 1
    return digest.hexdigest()


def _stats(report: CheckReport) -> dict:
    return {
        "size_bytes": report.size_bytes,
        "tokens": asdict(report.token_stats) if report.token_stats else None,
        "labels": report.labels,
        "duplicates": {k: v for k, v in report.duplicates.items() if k not in ("pairs", "leakage")}
        | {"leakage": report.duplicates.get("leakage", {}).get("count", 0)},
        "counts_by_category": dict(report.counts_by_category),
    }


def _packed(counts: np.ndarray) -> bytes:
    return np.asarray(counts, dtype="<u4").tobytes()


def add_dataset(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    dedupe: bool = False,
    model: str | None = None,
    near_dup_threshold: float | None = None,
    progress: Progress | None = None,
    val_indices: list[int] | None = None,
    lineage: dict | None = None,
) -> tuple[Dataset, bool]:
    """Check, normalize, split and record a training file.

    `val_indices` gives the held-out split outright (0-based indices into the file's
    examples) instead of drawing it with `seed`; `lineage` (where a derived dataset came
    from) is kept in its stats under "lineage".

    Returns (dataset, created): created is False when the same normalized content was
    already added (the existing dataset is returned; nothing is written).

    Raises:
        DatasetRejected: the file (after dedupe, when asked) has errors.
        ValueError: unknown model, or val_fraction outside [0, 1).
    """
    from app.database import get_engine
    from app.settings import get_settings
    from db.engine import read_session, write_session

    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}")
    kw = dict(
        model=model,
        near_dup_threshold=near_dup_threshold,
        val_fraction=val_fraction,
        seed=seed,
        progress=progress,
        val_indices=None if val_indices is None else np.asarray(val_indices, dtype=np.int64),
    )
    report = check_file(path, **kw)
    if dedupe and report.verdict != "errors":
        report = check_file(dedupe_file(report), **kw)
    if report.verdict == "errors":
        raise DatasetRejected(report)

    root = datasets_dir()
    root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".adding-", dir=root))
    try:
        content_hash = _write_normalized(report, work_dir)
        engine = get_engine()
        with read_session(engine) as session:
            existing = session.exec(
                select(Dataset).where(Dataset.content_hash == content_hash)
            ).first()
        if existing is not None:
            return existing, False
        target = root / content_hash
        if target.exists():  # left by an add that failed before recording it
            shutil.rmtree(target)
        os.replace(work_dir, target)
        store = get_settings().file_store
        store.publish(target)  # a URL root gets its copy before the database names it
    finally:
        if work_dir.exists():
            shutil.rmtree(work_dir, ignore_errors=True)

    arrays = report.arrays
    in_val = np.zeros(arrays.tokens.size, bool)
    in_val[arrays.val_indices] = True
    dataset = Dataset(
        name=name or Path(path).stem,
        content_hash=content_hash,
        format=report.format,
        source_path=store.ref_for(Path(report.path).resolve()) or str(report.path),
        n_examples=report.n_valid,
        n_train=int((~in_val).sum()),
        n_validation=int(in_val.sum()),
        val_fraction=val_fraction,
        split_seed=seed,
        verdict=report.verdict,
        stats=_stats(report) | ({"lineage": lineage} if lineage else {}),
        report=report.to_dict(),
        validation_indices=arrays.val_indices.tolist(),
        data_dir=store.ref_for(target) or str(target),
    )
    try:
        with write_session(engine) as session:
            session.add(dataset)
            session.flush()
            for split, mask in (("train", ~in_val), ("validation", in_val)):
                counts = arrays.tokens[mask]
                session.add(_token_count_row(dataset.id, arrays.tokenizer, split, counts))
    except IntegrityError:  # someone added the same content at the same moment
        with read_session(engine) as session:
            existing = session.exec(
                select(Dataset).where(Dataset.content_hash == content_hash)
            ).one()
        return existing, False
    return dataset, True


def list_datasets(session: Session) -> list[Dataset]:
    return list(
        session.exec(select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id.desc()))
    )


def get_dataset(session: Session, name_or_id: str | int) -> Dataset:
    """A dataset by id, by name (the newest of that name) or by a content-hash prefix.

    Raises:
        LookupError: none matches; the message lists the known names.
    """
    key = str(name_or_id).strip()
    if key.isdigit():
        found = session.get(Dataset, int(key))
        if found is not None:
            return found
    found = session.exec(
        select(Dataset)
        .where(Dataset.name == key)
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
    ).first()
    if found is None and len(key) >= 6:
        found = session.exec(
            select(Dataset).where(Dataset.content_hash.startswith(key.lower()))
        ).first()
    if found is not None:
        return found
    names = sorted({d.name for d in list_datasets(session)})
    known = ", ".join(names) if names else "none yet (add one with: ftm data add FILE)"
    raise LookupError(f"no dataset {key!r}; known datasets: {known}")


def load_examples(dataset: Dataset, split: str) -> list[dict]:
    """The normalized examples (chat, or preference for DPO) of one split, in order."""
    with open(dataset_file(dataset, split), "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _unpacked(data: bytes) -> array:
    counts = array("I")
    counts.frombytes(data)
    if sys.byteorder == "big":
        counts.byteswap()
    return counts


def _token_count_row(dataset_id: int | None, tokenizer: str, split: str, counts) -> TokenCount:
    return TokenCount(
        dataset_id=dataset_id,
        tokenizer=tokenizer,
        split=split,
        n=int(counts.size),
        total=int(counts.astype(np.int64).sum()),
        counts=_packed(counts),
    )


def token_counts(session: Session, dataset: Dataset, tokenizer: str, split: str) -> array:
    """Per-example token counts of a split, as array('I').

    `tokenizer` is a key such as "tiktoken:o200k_base" or "hf:/path/to/model" (an OpenAI
    model id or a model directory is accepted too). Counts not stored yet are computed
    from the stored examples and recorded.
    """
    from app.datasets.tokencount import counter_for, counter_for_key
    from db.engine import write_session

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    counter = (
        counter_for_key(tokenizer)
        if tokenizer.startswith(("tiktoken:", "hf:"))
        else counter_for(tokenizer)
    )
    row = session.exec(
        select(TokenCount).where(
            TokenCount.dataset_id == dataset.id,
            TokenCount.tokenizer == counter.key,
            TokenCount.split == split,
        )
    ).first()
    if row is not None:
        return _unpacked(row.counts)
    counts = np.array([counter.count(e) for e in load_examples(dataset, split)], dtype=np.uint32)
    try:
        # Its own short write, not the caller's session: on SQLite a read transaction that
        # saw the table before another process wrote to it cannot become a writer.
        with write_session(session.get_bind()) as writer:
            writer.add(_token_count_row(dataset.id, counter.key, split, counts))
    except IntegrityError:
        pass  # another process (a teammate's estimate) recorded the same counts first
    return _unpacked(_packed(counts))
