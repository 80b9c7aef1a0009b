"""events: the profile index only over events of a profile

Revision ID: 42d41b2ed477
Revises: ef6ad8edd72c
Create Date: 2026-12-02 05:17:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "42d41b2ed477"
down_revision = "ef6ad8edd72c"
branch_labels = None
depends_on = None

_INDEX = "ix_segment_events_site_id_profile_id_occur_time"
_COLUMNS = ["site_id", "profile_id", "occur_time"]


def upgrade() -> None:
    of_a_profile = sa.text("profile_id IS NOT NULL")
    op.drop_index(_INDEX, "segment_events")
    op.create_index(
        _INDEX, "segment_events", _COLUMNS, postgresql_where=of_a_profile, sqlite_where=of_a_profile
    )


def downgrade() -> None:
    op.drop_index(_INDEX, "segment_events")
    op.create_index(_INDEX, "segment_events", _COLUMNS)
