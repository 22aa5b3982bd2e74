"""Exact per-example token counts, the way OpenAI's public recipe counts them.

For each message: 3 tokens, plus the encoded length of every value (the role too), plus 1
when a ``name`` is present; then 3 for the reply priming. Values that are not strings
(tool calls, content parts, a ``tools`` list) are counted as their compact JSON text;
``weight`` is a training flag, not text, and is not counted. Text is encoded as ordinary
text: a literal ``<|endoftext|>`` in the data is counted as the characters it is.

A local model directory is counted with its own tokenizer and chat template instead
(transformers is imported only then).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.datasets.formats import token_messages, tools_of

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"

# Per-example training token limits; longer examples are truncated by OpenAI.
_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-4o", 65_536), ("gpt-4.1", 65_536), ("o4", 65_536), ("o3", 65_536), ("o1", 65_536),
    ("gpt-3.5-turbo", 16_385), ("gpt-4", 8_192),
)

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def token_limit(model: str) -> int | None:
    """The per-example token limit of an OpenAI model id (snapshots and ft: ids too)."""
    base = model.removeprefix("ft:").split(":", 1)[0]
    for prefix, limit in _LIMITS:
        if base.startswith(prefix):
            return limit
    return None


class TokenCounter(Protocol):
    key: str
    """Identifies the tokenizer in the token_counts table: "tiktoken:o200k_base", "hf:/path"."""
    limit: int | None

    def count(self, example: dict) -> int: ...


class _BoundedCache:
    """Counts of strings seen again. Two generations bound the memory: a string seen once
    waits in `recent` (cleared when it holds too many bytes); seen twice, it moves to
    `hot` (roles, shared system prompts, repeated labels), which has a fixed size."""

    HOT_MAX = 4096
    RECENT_MAX_CHARS = 1_000_000
    STRING_MAX_CHARS = 100_000

    def __init__(self) -> None:
        self.hot: dict[str, int] = {}
        self.recent: dict[str, int] = {}
        self._recent_chars = 0

    def get(self, text: str) -> int | None:
        n = self.hot.get(text)
        if n is not None:
            return n
        n = self.recent.pop(text, None)
        if n is not None:
            self._recent_chars -= len(text)
            if len(self.hot) < self.HOT_MAX:
                self.hot[text] = n
        return n

    def put(self, text: str, n: int) -> None:
        if len(text) > self.STRING_MAX_CHARS:
            return
        if self._recent_chars + len(text) > self.RECENT_MAX_CHARS:
            self.recent.clear()
            self._recent_chars = 0
        self.recent[text] = n
        self._recent_chars += len(text)


class TiktokenCounter:
    """OpenAI's recipe with a tiktoken encoding."""

    def __init__(self, encoding_name: str, limit: int | None = None, *,
                 private: bool = False) -> None:
        self.encoding_name = encoding_name
        self.key = f"tiktoken:{encoding_name}"
        self.limit = limit
        self.private = private
        """Build an encoding of its own instead of sharing the process's cached one, and
        drop its Python copy of the BPE ranks (about 30 MB, read only to pickle it). For
        large checks, whose processes keep nothing else in memory for long."""
        self._encode = None  # loaded on first use
        self._cache = _BoundedCache()

    @property
    def known_counts(self) -> dict[str, int]:
        """Counts of strings seen again (roles, shared prompts): a plain dict, for callers
        that look them up before calling `text_tokens`. Always the same dict object."""
        return self._cache.hot

    def load(self) -> None:
        """Load the encoding now rather than at the first count."""
        if self._encode is None:
            self._encode = (_private_encoding(self.encoding_name) if self.private
                            else _shared_encoding(self.encoding_name)).encode_ordinary

    def text_tokens(self, text: str) -> int:
        cache = self._cache
        n = cache.hot.get(text)
        if n is not None:
            return n
        if text in cache.recent:
            return cache.get(text)  # seen once before: now hot
        if self._encode is None:
            self.load()
        n = len(self._encode(text))
        cache.put(text, n)
        return n

    def release(self) -> None:
        """Let go of the encoder (it is loaded again if counting resumes)."""
        self._encode = None

    def _value_tokens(self, value: Any) -> int:
        if isinstance(value, str):
            return self.text_tokens(value)
        if value is None:
            return 0
        return self.text_tokens(orjson.dumps(value).decode())

    def count(self, example: dict) -> int:
        n = REPLY_PRIMING
        hot = self._cache.hot  # roles and shared prompts: looked up without a call
        for message in token_messages(example):
            n += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if type(value) is str:
                    known = hot.get(value)
                    n += known if known is not None else self.text_tokens(value)
                elif key != "weight":
                    n += self._value_tokens(value)
                if key == "name":
                    n += TOKENS_PER_NAME
        tools = tools_of(example)
        if tools:
            n += self._value_tokens(tools)
        return n


def _shared_encoding(name: str):
    from app.tokens import get_encoding

    return get_encoding(name)


def _private_encoding(name: str):
    """A fresh encoding object without its Python copy of the ranks."""
    import tiktoken
    from tiktoken_ext import openai_public

    from app.tokens import seed_tiktoken_cache

    constructor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        return _shared_encoding(name)
    seed_tiktoken_cache(name)
    with _fast_rank_loading(openai_public):
        params = constructor()
    encoding = tiktoken.Encoding(**params)
    encoding._mergeable_ranks = {}  # read only by __getstate__ (pickling), never here
    return encoding


_loader_lock = threading.Lock()


@contextmanager
def _fast_rank_loading(openai_public):
    """While the encoding's constructor runs, its rank file is parsed by `_load_ranks`:
    the same dict as tiktoken's loader gives, in about 40% of the time (a check's start-up
    waits on it). The constructor's module-level loader is swapped and restored under a
    lock; it is a drop-in, so a concurrent caller gets the same ranks either way."""
    with _loader_lock:
        original = getattr(openai_public, "load_tiktoken_bpe", None)
        if original is None:  # a tiktoken that loads differently: leave it be
            yield
            return
        openai_public.load_tiktoken_bpe = _load_ranks
        try:
            yield
        finally:
            openai_public.load_tiktoken_bpe = original


def _load_ranks(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """tiktoken's `load_tiktoken_bpe` (same file, same hash check, same result) without a
    Python-level loop per line: "token rank" pairs split at once, decoded by map."""
    from binascii import a2b_base64

    from tiktoken.load import read_file_cached

    fields = read_file_cached(tiktoken_bpe_file, expected_hash).split()
    if len(fields) % 2:
        raise ValueError(f"malformed rank file {tiktoken_bpe_file}: an odd number of fields")
    return dict(zip(map(a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


class HFCounter:
    """A local model's own tokenizer and chat template (transformers, imported here only)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = str(Path(model_dir).resolve())
        self.key = f"hf:{self.model_dir}"
        try:
            from transformers import AutoTokenizer  # heavy: only for local model directories

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        except ImportError as exc:
            raise ValueError("counting with a local model's tokenizer needs transformers: "
                             "pip install 'ftm[local]'") from exc
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same to the user
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"cannot load a tokenizer from {self.model_dir} ({reason}); give a "
                             "model directory with tokenizer files, or an OpenAI model id") from exc
        max_len = getattr(self.tokenizer, "model_max_length", None)
        self.limit = int(max_len) if isinstance(max_len, int) and max_len < 10**8 else None
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))

    def count(self, example: dict) -> int:
        messages = [m for m in token_messages(example)]
        if self.has_template:
            ids = self.tokenizer.apply_chat_template(
                messages, tools=tools_of(example), tokenize=True, add_generation_prompt=False
            )
            if hasattr(ids, "keys") and "input_ids" in ids:
                ids = ids["input_ids"]
            return len(ids)
        # No chat template: role and content lines, as plain text.
        text = "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in messages)
        return len(self.tokenizer.encode(text))


def counter_for(model: str | None) -> TokenCounter:
    """The counter for an OpenAI model id or a local model directory.

    Raises ValueError with what to do when the model is unknown.
    """
    model = model or DEFAULT_MODEL
    if Path(model).expanduser().is_dir():
        return HFCounter(Path(model).expanduser())
    from app.tokens import encoding_name_for_model

    try:
        name = encoding_name_for_model(model)
    except KeyError as exc:
        raise ValueError(
            f"unknown model {model!r}: give an OpenAI model id (e.g. {DEFAULT_MODEL}) "
            "or a local model directory"
        ) from exc
    return TiktokenCounter(name, token_limit(model))


def counter_for_key(key: str) -> TokenCounter:
    """The counter a token_counts key names ("tiktoken:o200k_base" or "hf:/path")."""
    kind, _, rest = key.partition(":")
    if kind == "tiktoken":
        return TiktokenCounter(rest)
    if kind == "hf":
        return HFCounter(rest)
    raise ValueError(f"unknown tokenizer key {key!r}; expected 'tiktoken:NAME' or 'hf:PATH'")
