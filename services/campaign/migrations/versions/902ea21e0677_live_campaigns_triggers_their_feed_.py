"""live campaigns: triggers, their feed cursor, waits and firings; listed run recipients

Revision ID: 902ea21e0677
Revises: c3c35abea4bb
Create Date: 2026-11-30 21:43:00.218685
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = '902ea21e0677'
down_revision = 'c3c35abea4bb'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trigger_firings',
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('person_key', sa.String(length=130), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('fire_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'], name=op.f('fk_trigger_firings_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'event_id', name=op.f('pk_trigger_firings'))
    )
    with op.batch_alter_table('trigger_firings', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_firings_campaign_id_person_key_fire_time', ['campaign_id', 'person_key', 'fire_time'], unique=False)

    op.create_table('trigger_waits',
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('person_key', sa.String(length=130), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('event_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('profile_id', sa.String(length=128), nullable=False),
    sa.Column('subscriber_id', sa.String(length=128), nullable=False),
    sa.Column('due_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'], name=op.f('fk_trigger_waits_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'person_key', name=op.f('pk_trigger_waits'))
    )
    with op.batch_alter_table('trigger_waits', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_waits_due_time', ['due_time'], unique=False)

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipients', sa.Text(), nullable=True))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('feed_cursor', sa.Text(), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('feed_cursor')
        batch_op.drop_column('trigger')

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('recipients')

    with op.batch_alter_table('trigger_waits', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_waits_due_time')

    op.drop_table('trigger_waits')
    with op.batch_alter_table('trigger_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_firings_campaign_id_person_key_fire_time')

    op.drop_table('trigger_firings')
