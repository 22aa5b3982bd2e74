"""counts, sizes and parameter counts as 64-bit integers: PostgreSQL's INTEGER is 32-bit,
and an 8B model's parameter count, a peak memory in bytes or a month of tokens passes it
(SQLite's INTEGER was always 64-bit, so nothing changes there but the declared type)

Revision ID: 0007_counts_and_sizes_as_bigint
Revises: 0006_storage_root_references
Create Date: 2026-12-01 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_counts_and_sizes_as_bigint"
down_revision = "0006_storage_root_references"
branch_labels = None
depends_on = None

# (table, column, nullable)
WIDENED = (
    ("token_counts", "total", False),
    ("jobs", "trained_tokens", True),
    ("uploaded_files", "bytes", False),
    ("throughput_samples", "model_params", False),
    ("throughput_samples", "peak_memory_bytes", True),
    ("gate_policies", "max_breakeven_requests", True),
    ("deployments", "requests_served", False),
)


def _alter(to_type: sa.types.TypeEngine, from_type: sa.types.TypeEngine) -> None:
    tables: dict[str, list[tuple[str, bool]]] = {}
    for table, column, nullable in WIDENED:
        tables.setdefault(table, []).append((column, nullable))
    for table, columns in tables.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, nullable in columns:
                batch_op.alter_column(
                    column, existing_type=from_type, type_=to_type, existing_nullable=nullable
                )


def upgrade() -> None:
    # SQLite: nothing to do, and batch mode would rebuild each table, whose drop cascades
    # to its children's rows (jobs -> checkpoints) under foreign_keys=ON.
    if op.get_bind().dialect.name != "sqlite":
        _alter(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _alter(sa.Integer(), sa.BigInteger())
