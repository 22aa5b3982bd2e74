"""Looking after ftm's database: `ftm db status`, `ftm db upgrade` and `ftm db copy`.

Every other command opens the database through `app.database`, which migrates it on first
use; these look first (`app.database.looking_at`), so a team can see what an upgrade will
do before it runs, and move a database between SQLite and PostgreSQL.
"""

from __future__ import annotations


class DatabaseAdminError(Exception):
    """A request the database cannot satisfy as it stands (a target that is not empty,
    a source at an older schema, a copy that does not match): what, where, what to do."""
