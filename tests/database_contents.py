"""What a test's database holds, as bytes to search for a secret (or for what must be there)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa


def database_bytes(ftm_home: Path, engine: sa.Engine) -> bytes:
    """SQLite: the database as it is on disk, the file and its write-ahead log (freed pages
    included). A server's files are not ours to read: there, every row of every table."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = [conn.execute(sa.text(f'SELECT * FROM "{t}"')).all() for t in tables]
        return repr(rows).encode()
    files = sorted(ftm_home.glob("ftm.db*"))
    assert files, f"no database files under {ftm_home}"
    return b"".join(f.read_bytes() for f in files)
