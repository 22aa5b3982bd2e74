"""stored paths under ftm's data directory become storage-root references
(``datasets/<sha256>``, ``jobs/<uid>/...``), so a moved data directory, a copied database
or a teammate's machine still finds them

Which directories are ftm's comes from whoever runs the migration (`db.migrate.upgrade`'s
``storage`` and ``data_dirs``: the app passes its settings), else from the environment
(``FTM_STORAGE__ROOT``, ``FTM_HOME``). Paths anywhere else (a user's own model directory,
a custom jobs directory) are left as they are; so are ids (``ft:...``, hub ids).

Revision ID: 0006_storage_root_references
Revises: 0005_traffic_policies_shadow
Create Date: 2026-12-01 21:30:00
"""

import os
import re
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = "0006_storage_root_references"
down_revision = "0005_traffic_policies_shadow"
branch_labels = None
depends_on = None

COLUMNS = (
    ("datasets", "data_dir"),
    ("datasets", "source_path"),
    ("jobs", "job_dir"),
    ("jobs", "remote_id"),
    ("jobs", "fine_tuned_model"),
    ("checkpoints", "model_ref"),
    ("artifacts", "uri"),
    ("eval_runs", "model"),
    ("promotions", "model"),
    ("deployments", "model"),
)
"""Every column that may hold a path ftm wrote (a dataset's files, a local job's
directory, checkpoint, adapter or merged model, and what was evaluated, promoted or
deployed from them)."""

# Frozen copy of db.storage's reference rule as of this revision.
_REF = re.compile(r"^(datasets/[0-9a-f]{64}|jobs/[0-9a-f]{32})(/[^\\]*)?$")


def _settings() -> tuple[list[Path], Path]:
    """(the directories whose datasets/ and jobs/ are ftm's, the local storage root)."""
    from db.storage import storage_from_env

    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    storage = attributes.get("storage") or storage_from_env()
    dirs = [Path(d) for d in attributes.get("data_dirs") or ()]
    if not dirs:
        home = os.environ.get("FTM_HOME")
        dirs = [Path(home).expanduser()] if home else []
        if storage.cache_dir is not None:  # storage_from_env's mirror is in the home
            dirs.append(Path(storage.cache_dir).parent)
    local_root = storage.local_dir
    bases: list[Path] = []
    for base in [*dirs, local_root]:
        for form in (Path(os.path.abspath(base)), Path(os.path.realpath(base))):
            if form not in bases:
                bases.append(form)
    return bases, local_root


def _reference(value: str, bases: list[Path]) -> str | None:
    if not value.startswith("/"):
        return None
    path = PurePosixPath(os.path.normpath(value))
    for base in bases:
        try:
            relative = path.relative_to(PurePosixPath(base.as_posix())).as_posix()
        except ValueError:
            continue
        if _REF.match(relative):
            return relative
    return None


def upgrade() -> None:
    bases, _ = _settings()
    connection = op.get_bind()
    for table, column in COLUMNS:
        t = sa.table(table, sa.column("id", sa.Integer), sa.column(column, sa.String))
        rows = connection.execute(
            sa.select(t.c.id, t.c[column]).where(t.c[column].like("/%"))
        ).all()
        for row_id, value in rows:
            ref = _reference(value, bases)
            if ref is not None:
                connection.execute(sa.update(t).where(t.c.id == row_id).values({column: ref}))


def downgrade() -> None:
    """References back to absolute paths under this machine's storage root."""
    _, local_root = _settings()
    connection = op.get_bind()
    for table, column in COLUMNS:
        t = sa.table(table, sa.column("id", sa.Integer), sa.column(column, sa.String))
        rows = connection.execute(
            sa.select(t.c.id, t.c[column]).where(
                t.c[column].like("datasets/%") | t.c[column].like("jobs/%")
            )
        ).all()
        for row_id, value in rows:
            if _REF.match(value):
                connection.execute(
                    sa.update(t)
                    .where(t.c.id == row_id)
                    .values({column: str(local_root / PurePosixPath(value))})
                )
