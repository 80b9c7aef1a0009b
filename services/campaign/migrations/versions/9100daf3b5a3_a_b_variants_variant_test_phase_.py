"""A/B variants, variant test phase, conversion goal: campaigns.variants, variant_test,
conversion_goal; each run's variants, goal, phase, sample, related run, decision and its
test's rest (existing rows: none, phase "")

Revision ID: 9100daf3b5a3
Revises: d2c91eff3f52
Create Date: 2026-12-01 06:00:40.691160
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = '9100daf3b5a3'
down_revision = 'd2c91eff3f52'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variants', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('conversion_goal', sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column('phase', sa.String(length=16), server_default='', nullable=False)
        )
        batch_op.add_column(sa.Column('sample_start', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sample_end', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('related_run_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('variant_decision', sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column('rest_time', services.kit.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('rest_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('rest_plan', sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column('rest_attempts', sa.Integer(), server_default='0', nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                'rest_next_attempt', services.kit.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index(
            'ix_campaign_runs_rest_state_rest_time', ['rest_state', 'rest_time'], unique=False
        )

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variants', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('variant_test', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('conversion_goal', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('conversion_goal')
        batch_op.drop_column('variant_test')
        batch_op.drop_column('variants')

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_runs_rest_state_rest_time')
        batch_op.drop_column('rest_next_attempt')
        batch_op.drop_column('rest_attempts')
        batch_op.drop_column('rest_plan')
        batch_op.drop_column('rest_state')
        batch_op.drop_column('rest_time')
        batch_op.drop_column('variant_decision')
        batch_op.drop_column('related_run_id')
        batch_op.drop_column('sample_end')
        batch_op.drop_column('sample_start')
        batch_op.drop_column('phase')
        batch_op.drop_column('conversion_goal')
        batch_op.drop_column('variants')
