"""run variants, audience sample, conversion goal: delivery_run_variants; the run's
sample_start / sample_end (NULL for every run before: the whole audience) and
conversion_goal ("" for every run before: none)

Revision ID: d8d686fe9d12
Revises: e472712bcf96
Create Date: 2026-12-01 06:00:09.700752
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd8d686fe9d12'
down_revision = 'e472712bcf96'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_run_variants',
    sa.Column('site_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=False),
    sa.Column('variant_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('weight_percent', sa.SmallInteger(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('content_options', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['site_id', 'run_id'], ['delivery_runs.site_id', 'delivery_runs.run_id'], name=op.f('fk_delivery_run_variants_site_id_delivery_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'run_id', 'variant_id', name=op.f('pk_delivery_run_variants'))
    )
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sample_start', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('sample_end', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('conversion_goal', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('delivery_runs', schema=None) as batch_op:
        batch_op.drop_column('conversion_goal')
        batch_op.drop_column('sample_end')
        batch_op.drop_column('sample_start')

    op.drop_table('delivery_run_variants')
