"""request fingerprint: what a create with a request_id asked for, so a repeat asking
for something else is refused (NULL for the campaigns before it: not checked)

Revision ID: c3c35abea4bb
Revises: b40077e12a02
Create Date: 2026-11-30 19:07:19.982846
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c3c35abea4bb'
down_revision = 'b40077e12a02'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_fingerprint', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('request_fingerprint')

