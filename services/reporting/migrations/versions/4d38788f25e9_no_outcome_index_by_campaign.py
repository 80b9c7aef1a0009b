"""no outcome index by campaign: reporting_outcomes loses ix_reporting_outcomes_site_campaign_status
(reports read counters; no statement looks outcomes up by campaign)

Revision ID: 4d38788f25e9
Revises: 47fd72d34f46
Create Date: 2026-12-01 20:36:43.954970
"""

from __future__ import annotations

from alembic import op

revision = '4d38788f25e9'
down_revision = '47fd72d34f46'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reporting_outcomes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reporting_outcomes_site_campaign_status'))


def downgrade() -> None:
    with op.batch_alter_table('reporting_outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reporting_outcomes_site_campaign_status'), ['site_id', 'campaign_id', 'status'], unique=False)
