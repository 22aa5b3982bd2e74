"""jobs.billed_usd: the amount the provider itself reports a job cost

Revision ID: 0002_job_billed_usd
Revises: 0001
Create Date: 2026-12-01 09:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_job_billed_usd"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billed_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("billed_usd")
