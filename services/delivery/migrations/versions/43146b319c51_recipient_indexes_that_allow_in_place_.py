"""recipient indexes that allow in-place updates

Revision ID: 43146b319c51
Revises: 6f6a53655656
Create Date: 2026-11-30 09:33:15.541684
"""

from __future__ import annotations

from alembic import op

revision = '43146b319c51'
down_revision = '6f6a53655656'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sending changes state, attempts and reason; with no index on them (and room left
    # on each page) PostgreSQL updates a recipient in place, writing no index entries.
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_recipients_chunk_id_state'))
        batch_op.drop_index(batch_op.f('ix_delivery_recipients_site_id_run_id_state'))
        batch_op.create_index('ix_delivery_recipients_chunk_id', ['chunk_id'], unique=False)
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_recipients SET (fillfactor = 70)')


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_recipients RESET (fillfactor)')
    with op.batch_alter_table('delivery_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_recipients_chunk_id')
        batch_op.create_index(batch_op.f('ix_delivery_recipients_site_id_run_id_state'), ['site_id', 'run_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_recipients_chunk_id_state'), ['chunk_id', 'state'], unique=False)
