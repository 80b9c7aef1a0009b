"""campaign_runs.test: test sends

Revision ID: d2c91eff3f52
Revises: d58f380a5ca7
Create Date: 2026-12-01 04:25:22.829964
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd2c91eff3f52'
down_revision = 'd58f380a5ca7'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('test')
