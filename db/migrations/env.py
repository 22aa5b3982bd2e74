"""Alembic environment: run against the connection db.migrate hands over."""

from alembic import context
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
connection = config.attributes["connection"]

# alembic makes its version column VARCHAR(32); ftm's revision ids are longer. SQLite
# ignores the length, PostgreSQL enforces it, so the table is made wide enough first.
connection.exec_driver_sql(
    "CREATE TABLE IF NOT EXISTS alembic_version "
    "(version_num VARCHAR(128) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
