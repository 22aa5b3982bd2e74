"""The one-pass path for plain chat examples gives exactly what the general path gives."""

from __future__ import annotations

import orjson
import pytest

from app.datasets.scan import scan_lines
from app.datasets.tokencount import TiktokenCounter
from tests.datasets.helpers import chat, instruction

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


class GeneralOnly:
    """A TiktokenCounter seen through another type: scan_lines takes the general path."""

    def __init__(self) -> None:
        self._inner = TiktokenCounter("o200k_base")
        self.key, self.limit = self._inner.key, self._inner.limit

    def count(self, example: dict) -> int:
        return self._inner.count(example)


def _rows() -> list[dict]:
    rows = [chat(i, reply=("yes", "no", " Maybe so ")[i % 3] if i % 4 else None) for i in range(60)]
    rows += [
        {
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {"role": "user", "content": "a <|endoftext|> b"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": "A long reply that is not a label at all"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "hi", "name": "bob"},
                {"role": "assistant", "content": "hello"},
            ]
        },  # a name: general path
        {"messages": [{"role": "user", "content": "no reply"}]},  # no assistant: an error
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
        {"messages": [], "tools": []},
        instruction(1),
    ]
    return rows


@pytest.mark.parametrize("rows", [_rows()])
def test_plain_chat_path_matches_general_path(rows):
    lines = [orjson.dumps(r) + b"\n" for r in rows]
    fast = scan_lines(lines, 0, TiktokenCounter("o200k_base"), first_part=True)
    general = scan_lines(lines, 0, GeneralOnly(), first_part=True)
    for name in ("lines", "formats", "tokens", "hashes", "signatures", "label_ids"):
        assert (getattr(fast, name) == getattr(general, name)).all(), name
    assert fast.labels == general.labels and len(fast.labels) >= 3
    assert fast.lines_of_format == general.lines_of_format
    assert fast.first_line_of_format == general.first_line_of_format
    assert [(p.line, p.category) for p in fast.log.kept] == [
        (p.line, p.category) for p in general.log.kept
    ]
    assert len(fast.log.kept) >= 3
    assert fast.tokens.size == len(rows) - 4


def test_private_encoding_counts_as_the_shared_one():
    from app.datasets.tokencount import _private_encoding
    from app.tokens import get_encoding

    text = "Ünïcode, code `x = 1`, and <|endoftext|> as text."
    private = _private_encoding("o200k_base")
    assert private._mergeable_ranks == {}  # its Python copy of the ranks is dropped
    assert private.encode_ordinary(text) == get_encoding("o200k_base").encode_ordinary(text)
