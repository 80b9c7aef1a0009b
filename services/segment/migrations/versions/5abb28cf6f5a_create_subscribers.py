"""create subscribers

Revision ID: 5abb28cf6f5a
Revises:
Create Date: 2026-11-22 22:00:54.982405
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "5abb28cf6f5a"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_subscribers",
        sa.Column("subscriber_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.LargeBinary(length=65), nullable=False),
        sa.Column("auth", sa.LargeBinary(length=16), nullable=False),
        sa.Column("browser", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("unsubscribe_reason", sa.String(length=128), nullable=True),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", name=op.f("pk_segment_subscribers")),
        # RegisterSubscriber upserts on it: one row per (site, endpoint).
        sa.UniqueConstraint(
            "site_id", "endpoint", name=op.f("uq_segment_subscribers_site_id_endpoint")
        ),
    )
    # ListSubscribers: keyset pages of one site.
    op.create_index(
        "ix_segment_subscribers_site_id_subscriber_id",
        "segment_subscribers",
        ["site_id", "subscriber_id"],
    )
    # StreamReachableSubscribers: index range scan over one site's active subscribers.
    op.create_index(
        "ix_segment_subscribers_site_id_state_subscriber_id",
        "segment_subscribers",
        ["site_id", "state", "subscriber_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_segment_subscribers_site_id_state_subscriber_id", table_name="segment_subscribers"
    )
    op.drop_index("ix_segment_subscribers_site_id_subscriber_id", table_name="segment_subscribers")
    op.drop_table("segment_subscribers")
