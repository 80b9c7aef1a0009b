"""saved segments: named definitions of a site, listed newest first

Revision ID: 18e15a5354e9
Revises: 6eb9423bed31
Create Date: 2026-11-30 14:47:17.262145
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.kit.db

revision = "18e15a5354e9"
down_revision = "6eb9423bed31"
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as models.PropertiesJSON).
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segment_segments",
        sa.Column("segment_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segment_segments")),
    )
    with op.batch_alter_table("segment_segments") as batch_op:
        batch_op.create_index(
            "ix_segment_segments_site_id_create_time_segment_id",
            ["site_id", "create_time", "segment_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_segments") as batch_op:
        batch_op.drop_index("ix_segment_segments_site_id_create_time_segment_id")
    op.drop_table("segment_segments")
