"""recipient pages half free: delivery_recipients' fillfactor 70 → 50 on PostgreSQL (pages
written from now on; those already full keep their rows)

Revision ID: bb2bb8024a31
Revises: fe8390090cbf
Create Date: 2026-12-01 20:35:50.304312
"""

from __future__ import annotations

from alembic import op

revision = 'bb2bb8024a31'
down_revision = 'fe8390090cbf'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A commit gives most rows of a page their new version in one transaction; at 70
    # half of them found no room on their page and wrote new index entries elsewhere.
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_recipients SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_recipients SET (fillfactor = 70)')
