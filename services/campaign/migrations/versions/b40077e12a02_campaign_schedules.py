"""campaign schedules: when a campaign's runs start by themselves, its state, the next
occurrence the scheduler claims by, and the occurrences that started no run

Revision ID: b40077e12a02
Revises: e2ca7d4a8485
Create Date: 2026-11-30 18:41:57.178807
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = 'b40077e12a02'
down_revision = 'e2ca7d4a8485'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign_missed_occurrences',
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('occurrence_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('record_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'], name=op.f('fk_campaign_missed_occurrences_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'occurrence_time', name=op.f('pk_campaign_missed_occurrences'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule', sa.Text(), nullable=True))
        # Every existing campaign has no schedule: a draft.
        batch_op.add_column(sa.Column('state', sa.String(length=16), nullable=False, server_default='draft'))
        batch_op.add_column(sa.Column('next_run_time', services.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_campaigns_state_next_run_time', ['state', 'next_run_time'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_state_next_run_time')
        batch_op.drop_column('next_run_time')
        batch_op.drop_column('state')
        batch_op.drop_column('schedule')

    op.drop_table('campaign_missed_occurrences')
