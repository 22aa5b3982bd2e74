"""One streaming pass over a byte range of a JSONL file.

Each line is parsed, its format detected, validated, normalized, counted and hashed; what
is kept per example is a few compact numbers (line, tokens, content hash, MinHash
signature, label id), never the example itself, so memory stays bounded however large the
file. A file is scanned as one part, or as several parts in worker processes whose
results are merged (app.datasets.check).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
import xxhash

from app.datasets import minhash
from app.datasets.formats import (
    CHAT,
    FORMATS,
    PLAIN_ROLES,
    Issue,
    chat_missing_turns,
    detect_format,
    label_of,
    missing_turns,
    normalize,
    reply_label,
    similarity_text,
    validate_example,
)
from app.datasets.report import ERROR, SEVERITY, ProblemLog
from app.datasets.tokencount import (
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    TiktokenCounter,
    TokenCounter,
)

BOM = b"\xef\xbb\xbf"
MAX_LABELS = 1000  # beyond this many distinct short replies, they are not class labels
NO_LABEL = -1
SIGNATURE_BATCH = 1024
PROGRESS_EVERY_BYTES = 1 << 20
READ_BUFFER = 1 << 20


@dataclass
class PartResult:
    """What one part of the file yields. Line numbers are relative to the part's start."""

    index: int
    n_lines: int = 0
    n_blank: int = 0
    log: ProblemLog = field(default_factory=ProblemLog)
    first_line_of_format: dict[str, int] = field(default_factory=dict)
    lines_of_format: Counter = field(default_factory=Counter)
    n_json: int = 0
    # One entry per valid example:
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    formats: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    tokens: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    signatures: np.ndarray = field(
        default_factory=lambda: np.empty((0, minhash.NUM_PERM), np.uint8)
    )
    label_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    labels: list[str] = field(default_factory=list)
    """Distinct labels in order of first appearance; label_ids index into it."""


def content_bytes(example: dict) -> bytes:
    """The canonical bytes of a normalized example: what the content hash is made of."""
    try:
        return orjson.dumps(example, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # nested deeper than orjson writes
        import json

        return json.dumps(
            example, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8", "surrogatepass")


def example_hash(data: bytes) -> int:
    """A 64-bit content hash (xxh3: about 25x faster than blake2b on a few-KB example,
    and as good for telling examples apart; nothing here needs a cryptographic hash)."""
    return xxhash.xxh3_64_intdigest(data)


def _plain_chat(
    messages, hot: dict[str, int], text_tokens
) -> tuple[int, str, str | None, list[Issue]] | None:
    """The common case in one pass: a chat example whose messages hold only a plain role
    and non-empty string content, with an assistant turn. Returns (tokens, similarity
    text, label, missing-turn warnings), the same as the general path gives; None when
    the example is anything else (it then goes through the general path, which reports
    what is wrong)."""
    if type(messages) is not list or not messages:
        return None
    texts = []
    reply = None
    has_system = has_user = False
    for m in messages:
        if type(m) is not dict or len(m) != 2:
            return None
        content, role = m.get("content"), m.get("role")
        if type(content) is not str or not content or role not in PLAIN_ROLES:
            return None
        if role == "assistant":
            reply = content
            texts.append(content)
        elif role == "user":
            has_user = True
            texts.append(content)
        else:  # one of SYSTEM_ROLES, the only other plain roles
            has_system = True
    if reply is None:
        # Decided before counting: the general path counts this example itself, and a
        # count is the costly part (a 50 MB message is 15 s of tokenizing).
        return None
    n = REPLY_PRIMING
    for m in messages:
        role, content = m["role"], m["content"]
        known = hot.get(role)
        n += TOKENS_PER_MESSAGE + (known if known is not None else text_tokens(role))
        known = hot.get(content)
        n += known if known is not None else text_tokens(content)
    return n, "\n".join(texts), reply_label(reply), missing_turns(has_system, has_user)


def _json_problem(line: bytes, exc: Exception) -> tuple[str, str]:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (
            "invalid_encoding",
            f"byte 0x{line[bad.start]:02x} at column {bad.start + 1} is not UTF-8; "
            "save the file as UTF-8",
        )
    message = str(exc)
    if len(message) > 160:
        message = message[:157] + "..."
    return "invalid_json", f"not valid JSON: {message}"


def scan_lines(
    lines,
    index: int,
    counter: TokenCounter,
    *,
    first_part: bool,
    progress: Callable[[int], None] | None = None,
) -> PartResult:
    """Scan an iterable of raw lines (bytes, newline included or not)."""
    result = PartResult(index)
    log = result.log
    # Compact typed arrays, not lists of ints: 4-8 bytes an example instead of ~36.
    rows_line = array("I")
    rows_fmt = array("B")
    rows_tokens = array("I")
    rows_hash = array("Q")
    rows_label = array("i")
    sig_chunks: list[np.ndarray] = []
    pending_texts: list[str] = []
    label_index: dict[str, int] = {}
    format_code = {f: i for i, f in enumerate(FORMATS)}
    done_bytes = 0
    next_progress = PROGRESS_EVERY_BYTES
    lines_of_format = result.lines_of_format
    # The one-pass path for plain chat examples needs tiktoken's cache of known counts.
    fast = isinstance(counter, TiktokenCounter)
    hot = counter.known_counts if fast else {}
    text_tokens = counter.text_tokens if fast else None

    lineno = 0
    for raw in lines:
        lineno += 1
        done_bytes += len(raw)
        if progress is not None and done_bytes >= next_progress:
            progress(done_bytes)
            next_progress = done_bytes + PROGRESS_EVERY_BYTES
        line = raw
        if first_part and lineno == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
            log.add(1, "bom", "the file starts with a UTF-8 byte order mark; it was ignored")
        try:
            example = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            # Checked only on failure: a good line is never copied to be stripped.
            if not line.strip():
                if raw.endswith(b"\n"):  # not the end of a file without a final newline
                    result.n_blank += 1
                    log.add(
                        lineno, "blank_line", "blank line; every line must hold one JSON example"
                    )
            else:
                log.add(lineno, *_json_problem(line, exc))
            continue
        result.n_json += 1
        plain = None
        if fast and type(example) is dict and len(example) == 1:
            try:
                plain = _plain_chat(example.get("messages"), hot, text_tokens)
            except Exception:  # noqa: BLE001 - the general path reports it
                plain = None
        if plain is not None:
            fmt = CHAT
            normalized = example
            n_tokens, sim_text, label, missing = plain
            for category, message in missing:
                log.add(lineno, category, message)
            result.first_line_of_format.setdefault(fmt, lineno)
            lines_of_format[fmt] += 1
        else:
            fmt = detect_format(example)
            if fmt is None:
                log.add(
                    lineno,
                    "data_type",
                    f"each line must be a JSON object, got {type(example).__name__}",
                )
                continue
            result.first_line_of_format.setdefault(fmt, lineno)
            lines_of_format[fmt] += 1
            issues = validate_example(example, fmt)
            for category, message in issues:
                log.add(lineno, category, message)
            if any(SEVERITY[c] == ERROR for c, _ in issues):
                continue
            if fmt == CHAT:
                for category, message in chat_missing_turns(example["messages"]):
                    log.add(lineno, category, message)
            normalized = normalize(example, fmt)
            try:
                n_tokens = counter.count(normalized)
            except Exception as exc:  # noqa: BLE001 - the example, not the tokenizer (loaded)
                if fast:  # a value tiktoken's recipe cannot serialize (e.g. nested too deep)
                    log.add(lineno, "data_type", f"could not be tokenized: {exc}")
                else:
                    log.add(
                        lineno,
                        "chat_template_rejected",
                        f"the model's chat template rejects it: {exc}",
                    )
                continue
            label = label_of(normalized)
            sim_text = similarity_text(normalized)
        rows_line.append(lineno)
        rows_tokens.append(n_tokens)
        if label is None:
            label_id = NO_LABEL
        else:
            label_id = label_index.get(label, NO_LABEL)
            if label_id == NO_LABEL and len(label_index) < MAX_LABELS:
                label_id = label_index[label] = len(label_index)
        rows_fmt.append(format_code[fmt])
        rows_hash.append(example_hash(content_bytes(normalized)))
        rows_label.append(label_id)
        pending_texts.append(sim_text)
        if len(pending_texts) >= SIGNATURE_BATCH:
            sig_chunks.append(minhash.signatures(pending_texts))
            pending_texts = []
    if pending_texts:
        sig_chunks.append(minhash.signatures(pending_texts))

    result.n_lines = lineno
    result.lines = np.frombuffer(rows_line, dtype=np.uint32).copy()
    result.formats = np.frombuffer(rows_fmt, dtype=np.uint8).copy()
    result.tokens = np.frombuffer(rows_tokens, dtype=np.uint32).copy()
    result.hashes = np.frombuffer(rows_hash, dtype=np.uint64).copy()
    result.label_ids = np.frombuffer(rows_label, dtype=np.int32).copy()
    result.labels = list(label_index)
    if sig_chunks:
        result.signatures = np.concatenate(sig_chunks)
    if progress is not None:
        progress(done_bytes)
    return result


def iter_range(path: str, start: int, end: int):
    """The raw lines of the bytes [start, end) of a file; `start` is a line start."""
    # A large buffer: lines of a few KB would otherwise cost a read call every few lines.
    with open(path, "rb", buffering=READ_BUFFER) as f:
        f.seek(start)
        position = start
        while position < end:
            line = f.readline()
            if not line:
                return
            position += len(line)
            yield line


# A worker process keeps one counter for all the parts it scans.
_worker_counter: TokenCounter | None = None


def adopt_counter(counter: TokenCounter) -> None:
    """Worker initializer (fork only): use the counter the parent loaded before forking."""
    global _worker_counter
    _worker_counter = counter


def scan_part(path: str, start: int, end: int, index: int, encoding_name: str) -> PartResult:
    """Worker entry point: scan one part with a tiktoken counter built in this process."""
    global _worker_counter
    from app.datasets.tokencount import TiktokenCounter

    if _worker_counter is None or _worker_counter.key != f"tiktoken:{encoding_name}":
        _worker_counter = TiktokenCounter(encoding_name, private=True)
    return scan_lines(iter_range(path, start, end), index, _worker_counter, first_part=index == 0)
