"""profiles and events: profiles, per-site property types, events; subscribers by profile

Revision ID: 6eb9423bed31
Revises: e2e5b0ce24f2
Create Date: 2026-11-30 13:09:53.786247
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.kit.db

revision = "6eb9423bed31"
down_revision = "e2e5b0ce24f2"
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as models.PropertiesJSON).
_PROPERTIES = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segment_profiles",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=False),
        sa.Column("properties", _PROPERTIES, nullable=False),
        sa.Column("test_profile", sa.Boolean(), nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "profile_id", name=op.f("pk_segment_profiles")),
    )
    op.create_table(
        "segment_property_types",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=134), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "scope", "name", name=op.f("pk_segment_property_types")),
    )
    op.create_table(
        "segment_events",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=True),
        sa.Column("subscriber_id", sa.String(length=128), nullable=True),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("properties", _PROPERTIES, nullable=False),
        sa.Column("receive_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "event_id", name=op.f("pk_segment_events")),
    )
    with op.batch_alter_table("segment_events") as batch_op:
        batch_op.create_index(
            "ix_segment_events_site_id_name_occur_time", ["site_id", "name", "occur_time"]
        )
        batch_op.create_index(
            "ix_segment_events_site_id_profile_id_occur_time",
            ["site_id", "profile_id", "occur_time"],
        )
        batch_op.create_index(
            "ix_segment_events_site_id_subscriber_id_occur_time",
            ["site_id", "subscriber_id", "occur_time"],
        )
    with op.batch_alter_table("segment_subscribers") as batch_op:
        batch_op.create_index(
            "ix_segment_subscribers_site_id_profile_id", ["site_id", "profile_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_subscribers") as batch_op:
        batch_op.drop_index("ix_segment_subscribers_site_id_profile_id")
    op.drop_table("segment_events")
    op.drop_table("segment_property_types")
    op.drop_table("segment_profiles")
