"""recipient VAPID key id: the site's key (campaign's vk_ id) each recipient is signed
with; "" (every recipient queued before) is the site's current key, as before

Revision ID: 6a61aa6400d6
Revises: b5e9733b90e8
Create Date: 2026-11-30 15:23:39.672117
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '6a61aa6400d6'
down_revision = 'b5e9733b90e8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vapid_key_id', sa.String(length=64), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_column('vapid_key_id')
