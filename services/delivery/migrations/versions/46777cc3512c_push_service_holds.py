"""push service holds: delivery_push_service_holds, one row per (site, push service) that
refused the site's VAPID signature (none before: every refusal failed its recipient)

Revision ID: 46777cc3512c
Revises: f56146a6d2f8
Create Date: 2026-12-01 13:42:54.946281
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = '46777cc3512c'
down_revision = 'f56146a6d2f8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_push_service_holds',
    sa.Column('site_id', sa.String(length=128), nullable=False),
    sa.Column('push_service', sa.String(length=512), nullable=False),
    sa.Column('http_status', sa.SmallInteger(), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=False),
    sa.Column('credentials_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('since', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_probe_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('probe_seconds', sa.Integer(), nullable=False),
    sa.Column('probe_recipient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('update_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'push_service', name=op.f('pk_delivery_push_service_holds'))
    )


def downgrade() -> None:
    op.drop_table('delivery_push_service_holds')
