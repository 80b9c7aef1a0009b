"""delivery_runs.test: test sends

Revision ID: e472712bcf96
Revises: 6efeb1cb8c4f
Create Date: 2026-12-01 04:26:19.061481
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e472712bcf96'
down_revision = '6efeb1cb8c4f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('test')
