"""Exact token counting with tiktoken, offline, from the rank files shipped in this package.

tiktoken's own loader fetches its BPE rank files over the network and caches them in a
directory (TIKTOKEN_CACHE_DIR, else the temp dir); with the cache disabled, read-only or
missing, and no network, it fails. ftm ships the two encodings it needs (MIT licensed)
and builds them here with tiktoken's own `Encoding` constructor from those files: nothing
is downloaded, no cache or temp directory is read or written. Every token count in ftm
(data check and its worker processes, cost estimates, the sandbox) goes through
`get_encoding` or `build_encoding`.
"""

from __future__ import annotations

import hashlib
from binascii import a2b_base64
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

ENCODINGS_DIR = Path(__file__).parent / "encodings"

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class EncodingSpec:
    """What tiktoken_ext.openai_public declares for one encoding, the rank file aside."""

    name: str
    sha256: str
    """The hash tiktoken itself expects of the rank file (`expected_hash`)."""
    pat_str: str
    special_tokens: dict[str, int]

    @property
    def rank_file(self) -> Path:
        return ENCODINGS_DIR / f"{self.name}.tiktoken"


# Copied from tiktoken_ext/openai_public.py (tests/datasets/test_offline_tokens.py checks
# they still equal what the installed tiktoken defines).
SHIPPED: dict[str, EncodingSpec] = {
    "o200k_base": EncodingSpec(
        name="o200k_base",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": EncodingSpec(
        name="cl100k_base",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}
SHIPPED_ENCODINGS = tuple(SHIPPED)

# Model families and the encoding they use (OpenAI's published mapping).
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-3.5", "gpt-4", "text-embedding-3", "text-embedding-ada")


class TokenizerUnavailable(ValueError):
    """A tokenizer that cannot be loaded at all: the message says which and what to do."""


def encoding_name_for_model(model: str) -> str:
    """Return the tiktoken encoding name for an OpenAI model id (snapshots and ft: ids too)."""
    base = model.removeprefix("ft:").split(":", 1)[0]
    if base.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if base.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    raise KeyError(
        f"no known tokenizer for model {model!r}; known families: "
        + ", ".join(_O200K_PREFIXES + _CL100K_PREFIXES)
    )


def _spec(name: str) -> EncodingSpec:
    spec = SHIPPED.get(name)
    if spec is None:
        raise TokenizerUnavailable(
            f"no offline tokenizer {name!r}; ftm counts tokens with "
            f"{' or '.join(SHIPPED_ENCODINGS)} (give an OpenAI model id of those families)"
        )
    return spec


def load_ranks(name: str) -> dict[bytes, int]:
    """The BPE ranks of a shipped encoding, read from its file in this package and
    verified against the hash tiktoken expects. The same dict as tiktoken's
    `load_tiktoken_bpe` gives, without its cache: "token rank" pairs split at once and
    decoded by map, in about 40% of its time (a data check's start-up waits on this)."""
    spec = _spec(name)
    path = spec.rank_file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerUnavailable(
            f"cannot read the {name} token ranks shipped with ftm at {path} "
            f"({exc.strerror or exc}); reinstall ftm"
        ) from None
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise TokenizerUnavailable(
            f"the {name} token ranks shipped with ftm at {path} are damaged (their SHA-256 "
            "is not the one tiktoken expects); reinstall ftm"
        )
    fields = data.split()
    return dict(zip(map(a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def build_encoding(name: str, *, keep_ranks: bool = True) -> tiktoken.Encoding:
    """A new tiktoken encoding of a shipped name, built from the package's rank file.

    keep_ranks=False drops the encoding's Python copy of the ranks (about 30 MB, read
    only to pickle it; the encoder keeps its own): for processes that only count.
    """
    import tiktoken  # imported when first needed: most commands count nothing

    spec = _spec(name)
    encoding = tiktoken.Encoding(
        spec.name,
        pat_str=spec.pat_str,
        mergeable_ranks=load_ranks(name),
        special_tokens=dict(spec.special_tokens),
    )
    if not keep_ranks:
        encoding._mergeable_ranks = {}  # read only by __getstate__ (pickling)
    return encoding


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The process's shared encoding of a shipped name (built once)."""
    return build_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))
