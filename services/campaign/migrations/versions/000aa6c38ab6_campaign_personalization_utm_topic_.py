"""campaign personalization, utm, topic, labels (and campaign_labels for the list
filter), policy; run content options and policy; site delivery policy

Revision ID: 000aa6c38ab6
Revises: 7fda5d1fcfd8
Create Date: 2026-12-01 03:11:30.477829
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '000aa6c38ab6'
down_revision = '7fda5d1fcfd8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign_labels',
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(
        ['campaign_id'], ['campaigns.campaign_id'],
        name=op.f('fk_campaign_labels_campaign_id_campaigns'), ondelete='CASCADE',
    ),
    sa.PrimaryKeyConstraint('site_id', 'label', 'campaign_id', name=op.f('pk_campaign_labels'))
    )
    with op.batch_alter_table('campaign_labels', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_campaign_labels_campaign_id'), ['campaign_id'], unique=False
        )

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_options', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('policy', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('personalization', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('utm', sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column('topic', sa.String(length=32), server_default='', nullable=False)
        )
        batch_op.add_column(sa.Column('labels', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('policy', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_policy', sa.LargeBinary(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('delivery_policy')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('policy')
        batch_op.drop_column('labels')
        batch_op.drop_column('topic')
        batch_op.drop_column('utm')
        batch_op.drop_column('personalization')

    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('policy')
        batch_op.drop_column('content_options')

    with op.batch_alter_table('campaign_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_labels_campaign_id'))

    op.drop_table('campaign_labels')
