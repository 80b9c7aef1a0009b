"""campaign and run audience

Revision ID: 0a957495ed5c
Revises: 9f15a4046c31
Create Date: 2026-11-30 14:47:41.838685
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0a957495ed5c'
down_revision = '9f15a4046c31'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A serialized clarion.segment.v1.AudienceSelector; NULL (every existing campaign and
    # run) is every reachable subscriber, as before.
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('audience')

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('audience')
