"""traffic_policies, shadow_answers, deployments.served_name: canary and shadow routing of the
gateway, and the name a client passes to reach a deployment

Revision ID: 0005_traffic_policies_shadow
Revises: 0004_deployments_gateway
Create Date: 2026-12-01 18:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0005_traffic_policies_shadow"
down_revision = "0004_deployments_gateway"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("served_name", _text(), nullable=True))
    op.create_table(
        "traffic_policies",
        sa.Column("task", _text(), nullable=False),
        sa.Column("alias", _text(), nullable=False),
        sa.Column("canary_alias", _text(), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("shadow_alias", _text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", _text(), nullable=True),
        sa.PrimaryKeyConstraint("task", "alias"),
    )
    op.create_table(
        "shadow_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", _text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task", _text(), nullable=False),
        sa.Column("alias", _text(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("primary_provider", _text(), nullable=True),
        sa.Column("primary_model", _text(), nullable=True),
        sa.Column("primary_text", _text(), nullable=True),
        sa.Column("candidate_provider", _text(), nullable=False),
        sa.Column("candidate_model", _text(), nullable=False),
        sa.Column("candidate_text", _text(), nullable=True),
        sa.Column("candidate_latency_ms", sa.Float(), nullable=True),
        sa.Column("candidate_status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("shadow_answers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_shadow_answers_task_candidate", ["task", "candidate_model"], unique=False
        )


def downgrade() -> None:
    op.drop_table("shadow_answers")
    op.drop_table("traffic_policies")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("served_name")
