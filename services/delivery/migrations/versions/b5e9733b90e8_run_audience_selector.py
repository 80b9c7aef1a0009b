"""run audience selector

Revision ID: b5e9733b90e8
Revises: 43146b319c51
Create Date: 2026-11-30 14:48:05.627595
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b5e9733b90e8'
down_revision = '43146b319c51'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A serialized clarion.segment.v1.AudienceSelector; NULL (every existing run) is
    # every reachable subscriber, as before.
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience_selector', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('audience_selector')
