"""events: the subscriber index only over events that name a subscriber

Revision ID: ef6ad8edd72c
Revises: 00d4d0d4c564
Create Date: 2026-12-02 03:31:31.116633
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ef6ad8edd72c"
down_revision = "00d4d0d4c564"
branch_labels = None
depends_on = None

_INDEX = "ix_segment_events_site_id_subscriber_id_occur_time"
_COLUMNS = ["site_id", "subscriber_id", "occur_time"]


def upgrade() -> None:
    named = sa.text("subscriber_id IS NOT NULL")
    op.drop_index(_INDEX, "segment_events")
    op.create_index(
        _INDEX, "segment_events", _COLUMNS, postgresql_where=named, sqlite_where=named
    )


def downgrade() -> None:
    op.drop_index(_INDEX, "segment_events")
    op.create_index(_INDEX, "segment_events", _COLUMNS)
