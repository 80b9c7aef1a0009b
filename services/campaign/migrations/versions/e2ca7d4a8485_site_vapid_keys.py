"""site VAPID keys: every key pair a site signs with, its own (current) and imported
ones; each existing site's key becomes its current, generated row

Revision ID: e2ca7d4a8485
Revises: 0a957495ed5c
Create Date: 2026-11-30 15:22:23.094067
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db
from services.kit.ids import new_id

revision = 'e2ca7d4a8485'
down_revision = '0a957495ed5c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    keys = op.create_table('site_vapid_keys',
    sa.Column('vapid_key_id', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('private_key', sa.LargeBinary(), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('create_time', services.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.site_id'], name=op.f('fk_site_vapid_keys_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vapid_key_id', name=op.f('pk_site_vapid_keys')),
    sa.UniqueConstraint('site_id', 'public_key', name=op.f('uq_site_vapid_keys_site_id_public_key'))
    )
    with op.batch_alter_table('site_vapid_keys', schema=None) as batch_op:
        batch_op.create_index('ix_site_vapid_keys_site_id_is_current', ['site_id'], unique=True, postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))

    # Every existing site's own key pair, as stored (PKCS#8 DER), becomes its current key.
    sites = sa.table(
        'sites',
        sa.column('site_id', sa.String()),
        sa.column('vapid_private_key', sa.LargeBinary()),
        sa.column('vapid_public_key', sa.LargeBinary()),
        sa.column('create_time', services.kit.db.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(sites.c.site_id, sites.c.vapid_private_key, sites.c.vapid_public_key, sites.c.create_time)
    ).all()
    if rows:
        op.bulk_insert(
            keys,
            [
                {
                    'vapid_key_id': new_id('vk'),
                    'site_id': site_id,
                    'private_key': private_key,
                    'public_key': public_key,
                    'is_current': True,
                    'origin': 'generated',
                    'create_time': create_time,
                }
                for site_id, private_key, public_key, create_time in rows
            ],
        )


def downgrade() -> None:
    # The sites keep their own key in their columns; imported keys are dropped.
    with op.batch_alter_table('site_vapid_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_site_vapid_keys_site_id_is_current', postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))

    op.drop_table('site_vapid_keys')
