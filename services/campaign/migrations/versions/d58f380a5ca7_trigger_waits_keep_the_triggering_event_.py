"""trigger waits keep the triggering event's properties their push reads

Revision ID: d58f380a5ca7
Revises: 000aa6c38ab6
Create Date: 2026-12-01 04:16:08.332544
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd58f380a5ca7'
down_revision = '000aa6c38ab6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trigger_waits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_properties', sa.Text(), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('trigger_waits', schema=None) as batch_op:
        batch_op.drop_column('event_properties')

