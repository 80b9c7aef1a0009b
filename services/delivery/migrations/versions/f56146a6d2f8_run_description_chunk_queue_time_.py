"""run description, chunk queue time, recipient attempt log: delivery_runs.description
("" for every run before: none), delivery_chunks.queue_time (NULL before: unknown) and
delivery_recipients.attempt_log ("" before: no history kept)

Revision ID: f56146a6d2f8
Revises: d8d686fe9d12
Create Date: 2026-12-01 10:18:04.983880
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = 'f56146a6d2f8'
down_revision = 'd8d686fe9d12'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_chunks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_time', services.kit.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_log', sa.Text(), server_default='', nullable=False))

    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('description')

    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_column('attempt_log')

    with op.batch_alter_table('delivery_chunks', schema=None) as batch_op:
        batch_op.drop_column('queue_time')
