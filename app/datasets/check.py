"""`check_file`: a full report for any path — a good file, a broken one, a directory, a
missing path — never a traceback.

The file is streamed once (in parallel parts when it is large), then the compact
per-example arrays are merged to find the format, duplicates, leakage, label balance,
the token distribution and the held-out split.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.datasets import minhash
from app.datasets.formats import FORMATS
from app.datasets.labels import imbalance, is_categorical
from app.datasets.report import MIN_EXAMPLES, CheckReport, ProblemLog, TokenStats
from app.datasets.scan import (
    NO_LABEL,
    PartResult,
    adopt_counter,
    iter_range,
    scan_lines,
    scan_part,
)
from app.datasets.split import split_indices
from app.datasets.tokencount import DEFAULT_MODEL, TiktokenCounter, TokenCounter, counter_for
from app.tokens import TokenizerUnavailable

PARALLEL_MIN_BYTES = 32 << 20
"""Files at least this large are scanned by worker processes (when there are 2+ CPUs)."""
PART_BYTES = 32 << 20
"""The largest part; smaller files are cut finer so that all processes finish together."""
MIN_PART_BYTES = 2 << 20
PARTS_PER_PROCESS = 32
MAX_WORKERS = 7  # besides this process, which scans parts too
MAX_LISTED = 200  # duplicate and leakage pairs listed in full in a report

Progress = Callable[[int, int], None]
"""progress(bytes_done, bytes_total)"""


@dataclass
class ExampleArrays:
    """Per valid example, in file order: what `add_dataset` needs after a check."""

    lines: np.ndarray
    tokens: np.ndarray
    hashes: np.ndarray
    val_indices: np.ndarray
    dropped_by_dedupe: np.ndarray
    """Line numbers a cleaned file leaves out: every copy after the first of each
    exact or near-duplicate cluster."""
    tokenizer: str
    label_ids: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)


def check_file(
    path: str | os.PathLike,
    *,
    model: str | None = None,
    near_dup_threshold: float | None = None,
    progress: Progress | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int | None = None,
    val_indices: np.ndarray | None = None,
) -> CheckReport:
    """Validate a JSONL training file and return its report.

    Args:
        path: the file. Problems with the path itself (missing, a directory, unreadable,
            empty) are reported as file-level problems (line 0).
        model: an OpenAI model id or a local model directory; default gpt-4o-mini.
        near_dup_threshold: estimated Jaccard similarity for near-duplicates; default
            `settings.data.near_duplicate_threshold`.
        progress: called with (bytes done, bytes total) while the file is read.
        val_fraction, seed: the held-out split whose leakage the report checks.
        workers: worker processes for a large file, besides this one (default: one per
            CPU but one, up to 7).
        val_indices: a held-out split given outright (0-based, sorted), instead of the
            seeded one; `ftm data mix` keeps the task's validation half this way.

    A tokenizer that cannot be loaded (an unknown model, a broken model directory) is
    one file-level problem, `tokenizer_unavailable`, and nothing is scanned.
    """
    from app.settings import get_settings

    started = time.perf_counter()
    settings = get_settings().data
    threshold = (
        settings.near_duplicate_threshold if near_dup_threshold is None else near_dup_threshold
    )
    model_name = model or DEFAULT_MODEL
    file = Path(path).expanduser()
    log = ProblemLog()

    def bare_report(size: int = 0) -> CheckReport:
        return CheckReport(
            str(file),
            None,
            0,
            0,
            0,
            log.kept,
            dict(log.counts),
            None,
            model_name,
            size_bytes=size,
            elapsed_s=time.perf_counter() - started,
        )

    size = _file_problem(file, log)
    if size == 0:
        log.add(
            0,
            "empty_file",
            f"{file} is empty; it needs at least {MIN_EXAMPLES} examples, one JSON object per line",
        )
    counter = _load_counter(model, log)
    if not size or counter is None:
        return bare_report(size or 0)

    parts = _scan(file, size, counter, progress, workers)
    report = _merge(
        file,
        size,
        parts,
        counter,
        model_name,
        threshold,
        settings.imbalance_ratio,
        val_fraction,
        seed,
        log,
        val_indices,
    )
    report.elapsed_s = time.perf_counter() - started
    return report


def _load_counter(model: str | None, log: ProblemLog) -> TokenCounter | None:
    """The loaded counter, or None after logging why it cannot be loaded. Loaded before
    the scan so that a failure is one problem, not one per example."""
    try:
        counter = counter_for(model)
        counter.load()
    except TokenizerUnavailable as exc:
        log.add(0, "tokenizer_unavailable", str(exc))
        return None
    return counter


def _file_problem(file: Path, log: ProblemLog) -> int | None:
    """The file's size, or None after logging why it cannot be read."""
    try:
        if not file.exists():
            log.add(0, "missing_file", f"no such file: {file}; check the path")
            return None
        if file.is_dir():
            log.add(0, "not_a_file", f"{file} is a directory; give a .jsonl file")
            return None
        with open(file, "rb"):
            pass
        return file.stat().st_size
    except OSError as exc:
        log.add(0, "unreadable_file", f"cannot read {file}: {exc.strerror or exc}")
        return None


def _part_bounds(file: Path, size: int, part_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about `part_bytes`, each starting at the beginning of a line."""
    starts = [0]
    with open(file, "rb") as f:
        offset = part_bytes
        while offset < size:
            f.seek(offset)
            f.readline()  # skip to the next line start
            position = f.tell()
            if position >= size:
                break
            if position > starts[-1]:
                starts.append(position)
            offset = position + part_bytes
    return list(zip(starts, starts[1:] + [size], strict=True))


def _scan(
    file: Path, size: int, counter: TokenCounter, progress: Progress | None, workers: int | None
) -> list[PartResult]:
    n_workers = workers if workers is not None else min((os.cpu_count() or 1) - 1, MAX_WORKERS)
    if isinstance(counter, TiktokenCounter) and size >= PARALLEL_MIN_BYTES and n_workers >= 1:
        try:
            return _scan_parallel(file, size, counter, n_workers, progress)
        except (OSError, RuntimeError):  # no processes here (a sandbox): scan inline
            pass
    report_bytes = (lambda done: progress(done, size)) if progress else None
    return [
        scan_lines(
            iter_range(str(file), 0, size), 0, counter, first_part=True, progress=report_bytes
        )
    ]


def _scan_parallel(
    file: Path, size: int, counter: TiktokenCounter, n_workers: int, progress: Progress | None
) -> list[PartResult]:
    """Parts of the file go to worker processes; this process scans parts too, taking
    them from the end of the queue for as long as no worker has started them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    part_bytes = min(PART_BYTES, max(MIN_PART_BYTES, size // ((n_workers + 1) * PARTS_PER_PROCESS)))
    bounds = _part_bounds(file, size, part_bytes)
    results: dict[int, PartResult] = {}
    done = 0

    def finished(i: int, result: PartResult) -> None:
        nonlocal done
        results[i] = result
        done += bounds[i][1] - bounds[i][0]
        if progress:
            progress(done, size)

    context = _process_context(multiprocessing)
    mine = TiktokenCounter(counter.encoding_name, counter.limit, private=True)
    pool_options = {}
    if context.get_start_method() == "fork":
        # Load the tokenizer once, before the fork: forked workers share it instead of
        # each loading its own (about 0.5 s of CPU apiece).
        mine.load()
        pool_options = {"initializer": adopt_counter, "initargs": (mine,)}
    with ProcessPoolExecutor(
        min(n_workers, len(bounds)), mp_context=context, **pool_options
    ) as pool:
        futures = [
            pool.submit(scan_part, str(file), start, end, i, counter.encoding_name)
            for i, (start, end) in enumerate(bounds)
        ]
        for i in reversed(range(len(futures))):
            if not futures[i].cancel():
                break  # the workers have reached this part: the rest is theirs
            start, end = bounds[i]
            finished(i, scan_lines(iter_range(str(file), start, end), i, mine, first_part=i == 0))
        mine.release()  # the merge needs the memory more than the tokenizer
        del mine
        for i, future in enumerate(futures):
            if i not in results:
                finished(i, future.result())
    return [results[i] for i in range(len(bounds))]


def _process_context(multiprocessing):
    """fork when this process runs no other thread, else spawn.

    A forked worker starts at once with this process's modules already imported; a
    spawned one re-imports them (about 2 s of CPU on a 2-core machine, when the point is
    to save CPU). But a forked child of a threaded process (the TUI, a progress bar) can
    deadlock on a lock another thread held at the fork, so those spawn.
    """
    import threading

    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _merge(
    file: Path,
    size: int,
    parts: list[PartResult],
    counter: TokenCounter,
    model: str,
    threshold: float,
    imbalance_ratio: float,
    val_fraction: float,
    seed: int,
    log: ProblemLog,
    val_indices: np.ndarray | None = None,
) -> CheckReport:
    offsets = np.cumsum([0] + [p.n_lines for p in parts[:-1]])
    first_line: dict[str, int] = {}
    lines_of_format: Counter = Counter()
    for part, offset in zip(parts, offsets, strict=True):
        log.extend(part.log, int(offset))
        lines_of_format.update(part.lines_of_format)
        for fmt, line in part.first_line_of_format.items():
            first_line[fmt] = min(first_line.get(fmt, 1 << 62), line + int(offset))

    file_format = min(first_line, key=first_line.get) if first_line else None
    others = {f: line for f, line in first_line.items() if f != file_format}
    if others:
        fmt, line = min(others.items(), key=lambda kv: kv[1])
        n_other = sum(lines_of_format[f] for f in others)
        log.add(
            line,
            "mixed_format",
            f"line {line} is {_a(fmt)} example but the file starts as {file_format} "
            f"(line {first_line[file_format]}); a file holds one format "
            f"({n_other} line(s) of another format)",
        )

    # Per-example arrays of the file's format, in file order, with absolute line numbers.
    # Each is gathered then the parts' copy dropped, so memory holds about one copy.
    lines = np.concatenate(
        [p.lines.astype(np.int64) + o for p, o in zip(parts, offsets, strict=True)]
    )
    code = FORMATS.index(file_format) if file_format else -1
    keep = np.concatenate([p.formats for p in parts]) == code
    tokens = _gather(parts, "tokens")
    everything = bool(keep.all())
    lines, tokens = (lines, tokens) if everything else (lines[keep], tokens[keep])
    hashes = _gather(parts, "hashes", None if everything else keep)
    sigs = _gather(parts, "signatures", None if everything else keep)
    label_ids, labels = _merge_labels(parts)
    label_ids = label_ids if everything else label_ids[keep]
    n = int(lines.size)

    if n < MIN_EXAMPLES:
        log.add(
            0, "too_few_examples", f"{n} valid example(s); OpenAI requires at least {MIN_EXAMPLES}"
        )

    token_stats = _token_stats(tokens, counter, lines, model, log)

    label_counts = None
    strata = None
    if n and (label_ids >= 0).all():
        counts = Counter(
            {
                labels[i]: int(c)
                for i, c in enumerate(np.bincount(label_ids, minlength=len(labels)))
                if c
            }
        )
        if is_categorical(counts, n):
            label_counts = dict(counts.most_common())
            strata = label_ids
            ratio = imbalance(counts)
            if ratio >= imbalance_ratio:
                common, rare = counts.most_common()[0], counts.most_common()[-1]
                log.add(
                    0,
                    "label_imbalance",
                    f"label {common[0]!r} has {common[1]} examples, {ratio:.1f}x label "
                    f"{rare[0]!r} ({rare[1]}); collect more of the rare labels or "
                    "rebalance",
                )

    val_idx = (
        split_indices(n, val_fraction, seed, strata)
        if val_indices is None
        else np.asarray(val_indices, dtype=np.int64)
    )
    duplicates, dropped = _duplicates(lines, hashes, sigs, val_idx, threshold, log)

    report = CheckReport(
        path=str(file),
        format=file_format,
        n_lines=int(sum(p.n_lines for p in parts)),
        n_examples=int(sum(p.n_json for p in parts)),
        n_valid=n,
        problems=log.kept,
        counts_by_category=dict(log.counts),
        token_stats=token_stats,
        model=model,
        size_bytes=size,
        duplicates=duplicates,
        labels=label_counts,
        split={
            "val_fraction": val_fraction,
            "seed": seed,
            "n_train": n - int(val_idx.size),
            "n_validation": int(val_idx.size),
            "stratified": strata is not None,
        },
    )
    report.arrays = ExampleArrays(
        lines=lines,
        tokens=tokens,
        hashes=hashes,
        val_indices=val_idx,
        dropped_by_dedupe=dropped,
        tokenizer=counter.key,
        label_ids=strata,
        labels=labels,
    )
    return report


def _gather(parts: list[PartResult], name: str, keep: np.ndarray | None = None) -> np.ndarray:
    """One array from all parts (rows where `keep`), releasing the parts' copies."""
    merged = np.concatenate([getattr(p, name) for p in parts])
    for p in parts:
        setattr(p, name, getattr(p, name)[:0])
    return merged if keep is None else merged[keep]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _merge_labels(parts: list[PartResult]) -> tuple[np.ndarray, list[str]]:
    """Part-local label ids mapped to one global list (NO_LABEL stays NO_LABEL)."""
    index: dict[str, int] = {}
    merged = []
    for part in parts:
        mapping = np.array(
            [index.setdefault(label, len(index)) for label in part.labels] + [NO_LABEL],
            dtype=np.int32,
        )
        ids = part.label_ids
        merged.append(np.where(ids >= 0, mapping[np.where(ids >= 0, ids, -1)], NO_LABEL))
    return (np.concatenate(merged).astype(np.int32) if merged else np.empty(0, np.int32)), list(
        index
    )


def _token_stats(
    tokens: np.ndarray, counter: TokenCounter, lines: np.ndarray, model: str, log: ProblemLog
) -> TokenStats:
    stats = TokenStats(tokenizer=counter.key, limit=counter.limit, n=int(tokens.size))
    if not tokens.size:
        return stats
    t = tokens.astype(np.int64)
    stats.total = int(t.sum())
    stats.min, stats.max = int(t.min()), int(t.max())
    stats.mean = round(float(t.mean()), 2)
    stats.p50, stats.p95 = (round(float(v), 1) for v in np.percentile(t, [50, 95]))
    stats.billable_per_epoch = stats.total
    if counter.limit:
        over = np.flatnonzero(t > counter.limit)
        stats.n_over_limit = int(over.size)
        stats.billable_per_epoch = int(np.minimum(t, counter.limit).sum())
        for i in over:
            log.add(
                int(lines[i]),
                "example_over_token_limit",
                f"{int(t[i]):,} tokens, over the {counter.limit:,}-token limit for {model}; "
                "it would be truncated",
            )
    return stats


def _union_find_roots(n: int, edges: np.ndarray) -> np.ndarray:
    """The smallest index of each example's cluster, given (a, b) edges."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)]) if n else parent


def _duplicates(
    lines: np.ndarray,
    hashes: np.ndarray,
    sigs: np.ndarray,
    val_idx: np.ndarray,
    threshold: float,
    log: ProblemLog,
) -> tuple[dict, np.ndarray]:
    n = lines.size
    listed: list[dict] = []
    edges = []
    exact_groups = exact_extra = 0
    if n:
        _, first, inverse, counts = np.unique(
            hashes, return_index=True, return_inverse=True, return_counts=True
        )
        exact_groups = int((counts > 1).sum())
        copies = np.flatnonzero(first[inverse] != np.arange(n))
        exact_extra = int(copies.size)
        for i in copies:
            j = first[inverse[i]]
            log.add(int(lines[i]), "duplicate_example", f"same example as line {int(lines[j])}")
            if len(listed) < MAX_LISTED:
                listed.append(
                    {"line": int(lines[i]), "duplicate_of": int(lines[j]), "kind": "exact"}
                )
        if copies.size:
            edges.append(np.column_stack([first[inverse[copies]], copies]))
        # Near duplicates among distinct examples (an exact copy is already reported).
        near = minhash.near_duplicate_pairs(
            sigs, threshold, candidates_mask=first[inverse] == np.arange(n)
        )
    else:
        near = np.empty((0, 3))
    for a, b, sim in near:
        a, b = int(a), int(b)
        log.add(
            int(lines[b]),
            "near_duplicate_example",
            f"near-duplicate of line {int(lines[a])} (estimated similarity {sim:.2f})",
        )
        if len(listed) < MAX_LISTED:
            listed.append(
                {
                    "line": int(lines[b]),
                    "duplicate_of": int(lines[a]),
                    "kind": "near",
                    "similarity": round(float(sim), 3),
                }
            )
    if near.size:
        edges.append(near[:, :2].astype(np.int64))

    leakage: list[list[int]] = []
    n_leaked = 0
    dropped = np.empty(0, dtype=np.int64)
    if edges:
        roots = _union_find_roots(n, np.concatenate(edges))
        dropped = lines[roots != np.arange(n)].astype(np.int64)
        in_val = np.zeros(n, bool)
        in_val[val_idx] = True
        train_idx = np.flatnonzero(~in_val)
        first_train_of_root = np.full(n, -1)
        root_of_train, where = np.unique(roots[train_idx], return_index=True)
        first_train_of_root[root_of_train] = train_idx[where]
        for i in val_idx:
            t = first_train_of_root[roots[i]]
            if t >= 0:
                n_leaked += 1
                log.add(
                    int(lines[i]),
                    "train_validation_leakage",
                    f"validation example duplicates training line {int(lines[t])}",
                )
                if len(leakage) < MAX_LISTED:
                    leakage.append([int(lines[i]), int(lines[t])])
    duplicates = {
        "threshold": threshold,
        "exact_groups": exact_groups,
        "exact_copies": exact_extra,
        "near_pairs": int(len(near)),
        "pairs": sorted(listed, key=lambda d: d["line"]),
        "leakage": {"count": n_leaked, "pairs": leakage},
        "removed_by_dedupe": int(dropped.size),
    }
    return duplicates, dropped
