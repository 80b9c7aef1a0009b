"""content options, policy, recipient context, run contexts, person sends and rate windows

Revision ID: 6efeb1cb8c4f
Revises: 3c1b6d86efe6
Create Date: 2026-12-01 03:00:39.320787
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = '6efeb1cb8c4f'
down_revision = '3c1b6d86efe6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_person_sends',
    sa.Column('site_id', sa.String(length=128), nullable=False),
    sa.Column('person_key', sa.String(length=130), nullable=False),
    sa.Column('days', sa.Text(), nullable=False),
    sa.Column('update_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'person_key', name=op.f('pk_delivery_person_sends'))
    )
    op.create_table('delivery_rate_windows',
    sa.Column('site_id', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.String(length=144), nullable=False),
    sa.Column('window_start', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'scope', 'window_start', name=op.f('pk_delivery_rate_windows'))
    )
    op.create_table('delivery_run_contexts',
    sa.Column('site_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=False),
    sa.Column('person_key', sa.String(length=130), nullable=False),
    sa.Column('event_properties', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['site_id', 'run_id'], ['delivery_runs.site_id', 'delivery_runs.run_id'], name=op.f('fk_delivery_run_contexts_site_id_delivery_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'run_id', 'person_key', name=op.f('pk_delivery_run_contexts'))
    )
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context', sa.Text(), server_default='', nullable=False))

    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_options', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('policy', sa.Text(), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('policy')
        batch_op.drop_column('content_options')

    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_column('context')

    op.drop_table('delivery_run_contexts')
    op.drop_table('delivery_rate_windows')
    op.drop_table('delivery_person_sends')
