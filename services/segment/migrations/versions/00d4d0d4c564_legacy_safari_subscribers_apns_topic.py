"""legacy Safari subscribers: segment_subscribers.apns_topic, the Website Push ID an APNs
device registered under (NULL for Web Push subscriptions)

Revision ID: 00d4d0d4c564
Revises: 9e4f5a6b7c8d
Create Date: 2026-12-01 13:43:53.625696
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "00d4d0d4c564"
down_revision = "9e4f5a6b7c8d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segment_subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("apns_topic", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segment_subscribers", schema=None) as batch_op:
        batch_op.drop_column("apns_topic")
