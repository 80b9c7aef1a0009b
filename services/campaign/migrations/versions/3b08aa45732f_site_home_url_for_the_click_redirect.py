"""site home_url for the click redirect

Revision ID: 3b08aa45732f
Revises: 9100daf3b5a3
Create Date: 2026-12-01 10:40:09.941205
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db


revision = '3b08aa45732f'
down_revision = '9100daf3b5a3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('home_url', sa.String(length=2048), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('home_url')
