"""create delivery tables

Revision ID: 6d297f273da1
Revises:
Create Date: 2026-11-22 22:00:34.351062
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "6d297f273da1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_runs",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("icon_url", sa.Text(), nullable=False),
        sa.Column("image_url", sa.Text(), nullable=False),
        sa.Column("target_url", sa.Text(), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("start_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finish_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site_id", "run_id", name=op.f("pk_delivery_runs")),
    )
    op.create_table(
        "delivery_chunks",
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("not_before", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            name=op.f("fk_delivery_chunks_site_id_delivery_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_delivery_chunks")),
    )
    with op.batch_alter_table("delivery_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_chunks_site_id_run_id", ["site_id", "run_id"], unique=False
        )
        batch_op.create_index(
            "ix_delivery_chunks_state_not_before", ["state", "not_before"], unique=False
        )

    op.create_table(
        "delivery_recipients",
        sa.Column(
            "recipient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.LargeBinary(), nullable=False),
        sa.Column("auth", sa.LargeBinary(), nullable=False),
        sa.Column("browser", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finish_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reported", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["delivery_chunks.chunk_id"],
            name=op.f("fk_delivery_recipients_chunk_id_delivery_chunks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            name=op.f("fk_delivery_recipients_site_id_delivery_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_delivery_recipients")),
        sa.UniqueConstraint(
            "site_id",
            "run_id",
            "subscriber_id",
            name=op.f("uq_delivery_recipients_site_id_run_id_subscriber_id"),
        ),
    )
    with op.batch_alter_table("delivery_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_recipients_chunk_id_state", ["chunk_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_delivery_recipients_reported_state", ["reported", "state"], unique=False
        )
        batch_op.create_index(
            "ix_delivery_recipients_site_id_run_id_state",
            ["site_id", "run_id", "state"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_recipients_site_id_run_id_state")
        batch_op.drop_index("ix_delivery_recipients_reported_state")
        batch_op.drop_index("ix_delivery_recipients_chunk_id_state")

    op.drop_table("delivery_recipients")
    with op.batch_alter_table("delivery_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_chunks_state_not_before")
        batch_op.drop_index("ix_delivery_chunks_site_id_run_id")

    op.drop_table("delivery_chunks")
    op.drop_table("delivery_runs")
