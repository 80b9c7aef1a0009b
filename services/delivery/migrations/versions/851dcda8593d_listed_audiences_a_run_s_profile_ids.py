"""listed audiences: a run's profile ids (every subscriber of each is a recipient);
"" (every run before) lists none, as before

Revision ID: 851dcda8593d
Revises: 6a61aa6400d6
Create Date: 2026-11-30 22:08:28.166079
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '851dcda8593d'
down_revision = '6a61aa6400d6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('audience_profiles', sa.Text(), server_default='', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('audience_profiles')
