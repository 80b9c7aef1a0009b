"""send timing: local-time delivery and cut-off; site time zone

Revision ID: 7fda5d1fcfd8
Revises: 902ea21e0677
Create Date: 2026-11-30 22:21:26.646787
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '7fda5d1fcfd8'
down_revision = '902ea21e0677'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timing', sa.Text(), nullable=True))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timing', sa.Text(), nullable=True))

    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('timezone')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('timing')

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('timing')

