"""reporting_outcomes.test, reporting_run_audiences.test: test sends

Revision ID: 02ffae80e85e
Revises: 536d86f3eb7c
Create Date: 2026-12-01 04:26:42.296266
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '02ffae80e85e'
down_revision = '536d86f3eb7c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reporting_outcomes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('reporting_run_audiences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('reporting_run_audiences', schema=None) as batch_op:
        batch_op.drop_column('test')

    with op.batch_alter_table('reporting_outcomes', schema=None) as batch_op:
        batch_op.drop_column('test')
