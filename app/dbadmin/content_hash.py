"""A content hash of a table that is the same whichever backend holds it.

Each row is written out canonically (JSON of its values in column-name order: datetimes
as UTC ISO text, since SQLite hands back naive UTC and PostgreSQL aware local time; JSON
columns re-serialised with sorted keys and kept apart from SQL NULL; bytes as hex; floats
by their shortest round-tripping repr) and hashed. The table's hash sums the rows' hashes
modulo 2**256: independent of the order rows come in, which differs between backends
(text primary keys sort by each server's collation), so rows can be streamed in any order
and never held all at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

_MODULUS = 2**256


def readable_columns(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    """The columns to select for hashing and copying, in column-name order. JSON comes
    back as its text, so SQL NULL (None) and JSON ``null`` (the text "null") stay apart."""
    return [
        sa.cast(column, sa.Text).label(column.name) if is_json(column) else column
        for column in sorted(table.columns, key=lambda c: c.name)
    ]


def is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def canonical_value(value: Any, column: sa.Column[Any]) -> Any:
    """A backend-independent, JSON-serialisable form of one value of ``column`` as read."""
    if value is None:
        return None
    if is_json(column):
        return {"json": json.loads(value)}
    if isinstance(column.type, sa.Float):  # a whole number may come back as an int
        return float(value)
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    return value


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive ones, as SQLite returns them, are UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TableHash:
    """Accumulates rows (as read with `readable_columns`) into a count and a hash."""

    def __init__(self, table: sa.Table) -> None:
        self._columns = sorted(table.columns, key=lambda c: c.name)
        self._names = [column.name for column in self._columns]
        self._sum = 0
        self.rows = 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            values = [canonical_value(v, c) for v, c in zip(row, self._columns, strict=True)]
            text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = hashlib.sha256(text.encode()).digest()
            self._sum = (self._sum + int.from_bytes(digest)) % _MODULUS
            self.rows += 1

    def hexdigest(self) -> str:
        """The table's hash: its column names and the sum of its rows' hashes."""
        header = json.dumps(self._names).encode()
        return hashlib.sha256(header + self._sum.to_bytes(32)).hexdigest()
