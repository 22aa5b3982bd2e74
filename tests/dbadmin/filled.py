"""An ftm database with rows in every table, each column holding the values a copy between
backends can get wrong: aware datetimes in another zone with microseconds, floats that are
not round in binary, booleans, bytes, non-ASCII text, JSON objects with unsorted keys,
JSON ``null`` beside SQL NULL, and a promotion pointing at an earlier one. Generated from
the schema itself, so a table or column added later is filled too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables)

ZONE = timezone(timedelta(hours=5, minutes=30))


def fill(
    engine: Engine, rows: int = 3, big_table: str = "metric_points", big_rows: int = 7
) -> None:
    """``rows`` rows in every table (``big_rows`` in ``big_table``), ids 1..n."""
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            count = big_rows if table.name == big_table else rows
            for i in range(count):
                connection.execute(
                    table.insert().values({c.name: _value(table, c, i) for c in table.columns})
                )


def _value(table: sa.Table, column: sa.Column[Any], i: int) -> Any:
    if column.foreign_keys:
        target = next(iter(column.foreign_keys)).column
        if target.table is table:  # promotions.previous_id: the one before, the first none
            return None if i == 0 else i
        return 1 + i % 3  # the parents have ids 1..3
    kind = column.type
    if isinstance(kind, sa.JSON):
        if column.nullable and i % 3 == 0:
            return sa.null()  # SQL NULL
        if i % 3 == 1:
            return sa.JSON.NULL  # the JSON value null
        return {"zeta": [i, 2.5, "é✓"], "alpha": {"nested": True, "n": None}}
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Integer):
        return i + 1
    if isinstance(kind, sa.Float):
        return i + 0.1
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 3, 4, 5, 6, 7, 123456 + i, tzinfo=ZONE)
    if isinstance(kind, sa.LargeBinary):
        return bytes([0, 255, i])
    return f"{column.name}-{i}-é✓ 'q\""
