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

from pathlib import Path
from typing import Any, Protocol

import orjson

from app.datasets.formats import token_messages, tools_of
from app.tokens import TokenizerUnavailable, encoding_name_for_model

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"

# Per-example training token limits; longer examples are truncated by OpenAI.
_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-4o", 65_536),
    ("gpt-4.1", 65_536),
    ("o4", 65_536),
    ("o3", 65_536),
    ("o1", 65_536),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-4", 8_192),
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

    def load(self) -> None:
        """Load the tokenizer now; raises app.tokens.TokenizerUnavailable if it cannot be."""

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

    def __init__(
        self, encoding_name: str, limit: int | None = None, *, private: bool = False
    ) -> None:
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
            self._encode = (
                _private_encoding(self.encoding_name)
                if self.private
                else _shared_encoding(self.encoding_name)
            ).encode_ordinary

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
    from app.tokens import build_encoding

    return build_encoding(name, keep_ranks=False)


class HFCounter:
    """A local model's own tokenizer and chat template (transformers, imported here only)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = str(Path(model_dir).resolve())
        self.key = f"hf:{self.model_dir}"
        try:
            from transformers import AutoTokenizer  # heavy: only for local model directories

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        except ImportError as exc:
            raise TokenizerUnavailable(
                "counting with a local model's tokenizer needs "
                "transformers: pip install 'ftm[local]'"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same to the user
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TokenizerUnavailable(
                f"cannot load a tokenizer from {self.model_dir} ({reason}); give a model "
                "directory with tokenizer files, or an OpenAI model id"
            ) from exc
        max_len = getattr(self.tokenizer, "model_max_length", None)
        self.limit = int(max_len) if isinstance(max_len, int) and max_len < 10**8 else None
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if self.has_template:
            self._check_template()

    def load(self) -> None:
        """Nothing to do: the tokenizer is loaded when the counter is made."""

    def _check_template(self) -> None:
        """A chat template that does not parse fails on every example: say so once.
        A template that only rejects this probe's shape (some demand a system turn) is
        left to judge each example."""
        from jinja2 import TemplateSyntaxError

        probe = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        try:
            self.tokenizer.apply_chat_template(probe, tokenize=False)
        except TemplateSyntaxError as exc:
            raise TokenizerUnavailable(
                f"the chat template of {self.model_dir} does not parse ({exc.message}, "
                f"template line {exc.lineno}); fix chat_template in its tokenizer_config.json"
            ) from None
        except Exception:  # noqa: BLE001, S110 - judged per example, where it says why
            pass

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

    Raises TokenizerUnavailable (a ValueError) with what to do when the model is unknown
    or its tokenizer cannot be loaded.
    """
    model = model or DEFAULT_MODEL
    if Path(model).expanduser().is_dir():
        return HFCounter(Path(model).expanduser())
    try:
        name = encoding_name_for_model(model)
    except KeyError as exc:
        raise TokenizerUnavailable(
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
