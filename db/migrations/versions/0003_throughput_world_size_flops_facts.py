"""throughput_samples.world_size and .flops_facts: per-device samples that calibration
recomputes the estimator's FLOPs for

Revision ID: 0003_throughput_world_size_flops_facts
Revises: 0002_job_billed_usd
Create Date: 2026-12-01 13:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_throughput_world_size_flops_facts"
down_revision = "0002_job_billed_usd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("throughput_samples", schema=None) as batch_op:
        # Samples written before: one process (ftm ran multi-GPU jobs rarely, and their
        # rate cannot be split after the fact).
        batch_op.add_column(
            sa.Column("world_size", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("flops_facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("throughput_samples", schema=None) as batch_op:
        batch_op.drop_column("flops_facts")
        batch_op.drop_column("world_size")
