"""run timing: local-time delivery and cut-off

Revision ID: 3c1b6d86efe6
Revises: 851dcda8593d
Create Date: 2026-11-30 22:19:31.969922
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = '3c1b6d86efe6'
down_revision = '851dcda8593d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timing', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('cut_off_time', services.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_delivery_runs_cut_off_time', ['cut_off_time'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_runs_cut_off_time')
        batch_op.drop_column('cut_off_time')
        batch_op.drop_column('timing')

