"""reach at scale: a sample bucket per person (a generated column on PostgreSQL) and
the events' name/time index covering the people it names

Revision ID: 9e4f5a6b7c8d
Revises: 7c1d2e3f4a5b
Create Date: 2026-11-30 16:40:00
"""

from __future__ import annotations

from alembic import op

revision = "9e4f5a6b7c8d"
down_revision = "7c1d2e3f4a5b"
branch_labels = None
depends_on = None

_BUCKETS = {
    # table: the column the bucket hashes (services.segment.models)
    "segment_profiles": "profile_id",
    "segment_subscribers": "subscriber_id",
}
_EVENTS_INDEX = "ix_segment_events_site_id_name_occur_time"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column in _BUCKETS.items():
        if postgresql:
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN sample_bucket smallint "
                f"GENERATED ALWAYS AS (mod(abs(hashtext({column})), 100)) STORED"
            )
        else:
            # SQLite has no hash to agree with; it never samples (reach is exact there).
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN sample_bucket SMALLINT "
                "GENERATED ALWAYS AS (0) VIRTUAL"
            )
        op.create_index(f"ix_{table}_site_id_sample_bucket", table, ["site_id", "sample_bucket"])
    if postgresql:
        op.drop_index(_EVENTS_INDEX, "segment_events")
        op.create_index(
            _EVENTS_INDEX,
            "segment_events",
            ["site_id", "name", "occur_time"],
            postgresql_include=["profile_id", "subscriber_id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(_EVENTS_INDEX, "segment_events")
        op.create_index(_EVENTS_INDEX, "segment_events", ["site_id", "name", "occur_time"])
    for table in _BUCKETS:
        op.drop_index(f"ix_{table}_site_id_sample_bucket", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sample_bucket")
