"""Exact token counting with tiktoken, offline.

tiktoken downloads its BPE rank files on first use, which fails without a network. ftm
ships the two encodings it needs (MIT licensed, verified by the same SHA-256 sums tiktoken
expects) and seeds tiktoken's own cache with them, so `tiktoken.get_encoding` works offline
and, on a machine with a network, plain tiktoken behaviour is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import tiktoken

ENCODINGS_DIR = Path(__file__).parent / "encodings"
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
SHIPPED_ENCODINGS = ("o200k_base", "cl100k_base")

# Model families and the encoding they use (OpenAI's published mapping).
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-3.5", "gpt-4", "text-embedding-3", "text-embedding-ada")


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


def _tiktoken_cache_dir() -> Path:
    # Mirrors tiktoken.load.read_file_cached so the seeded file is the one it looks for.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return Path(os.environ["DATA_GYM_CACHE_DIR"])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed_tiktoken_cache(name: str) -> None:
    """Place the shipped rank file where tiktoken's cache expects it, if not there yet."""
    source = ENCODINGS_DIR / f"{name}.tiktoken"
    if not source.exists():
        return
    cache_dir = _tiktoken_cache_dir()
    if not cache_dir.as_posix():  # an empty TIKTOKEN_CACHE_DIR disables tiktoken's cache
        return
    key = hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()
    target = cache_dir / key
    if target.exists():
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken encoding by name, available offline for the shipped encodings."""
    if name in SHIPPED_ENCODINGS:
        seed_tiktoken_cache(name)
    return tiktoken.get_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))
