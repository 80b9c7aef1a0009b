"""Track gone subscribers until segment has unsubscribed them (a segment outage
delays pruning, never loses it).

Revision ID: dee894a7abe0
Revises: 6d297f273da1
Create Date: 2026-11-22 22:42:29.006137
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'dee894a7abe0'
down_revision = '6d297f273da1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_pending', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_delivery_recipients_unsubscribe_pending', ['unsubscribe_pending'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_recipients_unsubscribe_pending')
        batch_op.drop_column('unsubscribe_pending')
