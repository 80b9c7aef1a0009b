"""kept audiences: a run's segment evaluated once, its members by subscriber id

Revision ID: 332a51324d5d
Revises: 18e15a5354e9
Create Date: 2026-11-30 14:48:58.640729
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "332a51324d5d"
down_revision = "18e15a5354e9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_kept_audience_members",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("audience_key", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "audience_key", "subscriber_id", name=op.f("pk_segment_kept_audience_members")
        ),
    )
    op.create_table(
        "segment_kept_audiences",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("audience_key", sa.String(length=128), nullable=False),
        sa.Column("snapshot_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "audience_key", name=op.f("pk_segment_kept_audiences")),
    )
    op.create_index(
        "ix_segment_kept_audiences_site_id_create_time",
        "segment_kept_audiences",
        ["site_id", "create_time"],
    )


def downgrade() -> None:
    op.drop_index("ix_segment_kept_audiences_site_id_create_time", "segment_kept_audiences")
    op.drop_table("segment_kept_audiences")
    op.drop_table("segment_kept_audience_members")
