"""Versioned schema migrations (alembic), run from code: no alembic.ini to find.

Every schema change is a new file in db/migrations/versions; `upgrade` brings any database,
blank or old, to the newest revision. The applied revision is kept in the database's
``alembic_version`` table; one this version does not know (`is_known_revision`) means a
newer ftm wrote the database, and callers refuse it rather than touch it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from db.storage import Storage

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # only possible if the shipped migrations folder is empty or broken
        raise RuntimeError(f"no migration head found in {MIGRATIONS_DIR}")
    return head


def is_known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations. A database stamped with
    another one was written by a newer ftm (or a fork): upgrading it cannot work."""
    return revision in {
        script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()
    }


def pending_revisions(current: str | None) -> list[tuple[str, str]]:
    """The migrations `upgrade` would apply to a database at ``current`` (None: a blank
    one), oldest first, as (revision, the first line of its description)."""
    script = ScriptDirectory.from_config(_config())
    newest_first = script.iterate_revisions(head_revision(), current or "base")
    return [(s.revision, (s.doc or "").strip().split("\n")[0]) for s in newest_first][::-1]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    storage: Storage | None = None,
    data_dirs: Sequence[Path] = (),
) -> None:
    """Apply every migration not yet applied, up to ``revision``.

    ``storage`` (this machine's storage root) and ``data_dirs`` (ftm's data directory)
    tell the migration that turns stored paths into root references (0006) which paths
    are ftm's; unset, it reads them from the environment (`db.storage.storage_from_env`).
    """
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["storage"] = storage
        config.attributes["data_dirs"] = list(data_dirs)
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str, *, storage: Storage | None = None) -> None:
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["storage"] = storage
        command.downgrade(config, revision)


def revision_autogenerate(engine: Engine, message: str, rev_id: str) -> None:
    """Developer aid: write a new migration from the difference between models and DB."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
