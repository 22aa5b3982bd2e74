"""deployments, gateway_keys, gateway_requests: what serving a model needs recorded

Revision ID: 0004_deployments_gateway
Revises: 0003_throughput_world_size_flops_facts
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004_deployments_gateway"
down_revision = "0003_throughput_world_size_flops_facts"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", _text(), nullable=False),
        sa.Column("model", _text(), nullable=False),
        sa.Column("task", _text(), nullable=True),
        sa.Column("alias", _text(), nullable=True),
        sa.Column("kind", _text(), nullable=False),
        sa.Column("hardware", _text(), nullable=True),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("state", _text(), nullable=False),
        sa.Column("remote_id", _text(), nullable=True),
        sa.Column("endpoint_url", _text(), nullable=True),
        sa.Column("usd_per_hour", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", _text(), nullable=True),
        sa.Column("idle_stop_s", sa.Integer(), nullable=True),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requests_served", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_provider"), ["provider"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_remote_id"), ["remote_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_state"), ["state"], unique=False)

    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _text(), nullable=False),
        sa.Column("key_hash", _text(), nullable=False),
        sa.Column("prefix", _text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("gateway_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_keys_prefix"), ["prefix"], unique=False)
        batch_op.create_index(
            "ix_gateway_keys_live_name",
            ["name"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "gateway_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", _text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task", _text(), nullable=True),
        sa.Column("alias", _text(), nullable=True),
        sa.Column("provider", _text(), nullable=True),
        sa.Column("model", _text(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("route", _text(), nullable=False),
        sa.Column("key_name", _text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error_code", _text(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("gateway_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_requests_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gateway_requests_deployment_id"), ["deployment_id"], unique=False
        )
        batch_op.create_index(
            "ix_gateway_requests_task_alias_created_at",
            ["task", "alias", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    # Children first: gateway_requests refers to deployments.
    op.drop_table("gateway_requests")
    op.drop_table("gateway_keys")
    op.drop_table("deployments")
