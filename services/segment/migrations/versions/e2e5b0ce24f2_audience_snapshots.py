"""audience snapshots: when each subscriber was unsubscribed; drop the stream's index

Revision ID: e2e5b0ce24f2
Revises: 5abb28cf6f5a
Create Date: 2026-11-30 07:14:59.227079
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "e2e5b0ce24f2"
down_revision = "5abb28cf6f5a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segment_subscribers") as batch_op:
        # ListAudienceMembers: who was still subscribed at a run's snapshot time.
        batch_op.add_column(
            sa.Column(
                "unsubscribe_time", services.kit.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        # Only StreamReachableSubscribers (removed) read it; every write paid for it.
        batch_op.drop_index("ix_segment_subscribers_site_id_state_subscriber_id")
    # Rows unsubscribed before this column existed: their last change was the unsubscribe
    # (a re-registration re-activates), so update_time is when it happened.
    op.execute(
        "UPDATE segment_subscribers SET unsubscribe_time = update_time "
        "WHERE state = 'unsubscribed'"
    )


def downgrade() -> None:
    with op.batch_alter_table("segment_subscribers") as batch_op:
        batch_op.create_index(
            "ix_segment_subscribers_site_id_state_subscriber_id",
            ["site_id", "state", "subscriber_id"],
        )
        batch_op.drop_column("unsubscribe_time")
