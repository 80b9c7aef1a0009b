"""conversions: outcome variant and profile, run goals, feed cursors, credited conversions

Revision ID: 60d7319fc0e7
Revises: 02ffae80e85e
Create Date: 2026-12-01 06:01:56.038039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "60d7319fc0e7"
down_revision = "02ffae80e85e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reporting_control_conversions",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "run_id", "profile_id", name=op.f("pk_reporting_control_conversions")
        ),
    )
    with op.batch_alter_table("reporting_control_conversions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reporting_control_conversions_site_campaign",
            ["site_id", "campaign_id"],
            unique=False,
        )

    op.create_table(
        "reporting_conversions",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=False),
        sa.Column("revenue", sa.Double(), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "event_id", name=op.f("pk_reporting_conversions")),
    )
    with op.batch_alter_table("reporting_conversions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reporting_conversions_site_campaign", ["site_id", "campaign_id"], unique=False
        )
        batch_op.create_index(
            "ix_reporting_conversions_site_run", ["site_id", "run_id"], unique=False
        )

    op.create_table(
        "reporting_feed_cursors",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("event_name", sa.String(length=128), nullable=False),
        sa.Column("cursor", sa.String(length=512), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "event_name", name=op.f("pk_reporting_feed_cursors")),
    )
    op.create_table(
        "reporting_run_goals",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("event_name", sa.String(length=128), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("revenue_property", sa.String(length=64), nullable=False),
        sa.Column("open_until", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "run_id", name=op.f("pk_reporting_run_goals")),
    )
    with op.batch_alter_table("reporting_run_goals", schema=None) as batch_op:
        batch_op.create_index("ix_reporting_run_goals_open_until", ["open_until"], unique=False)
        batch_op.create_index(
            "ix_reporting_run_goals_site_event", ["site_id", "event_name"], unique=False
        )

    # Outcomes recorded before have no variant and no profile ('').
    with op.batch_alter_table("reporting_outcomes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("variant", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("profile_id", sa.String(length=128), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_reporting_outcomes_site_profile_time",
            ["site_id", "profile_id", "occur_time"],
            unique=False,
            postgresql_where=sa.text("profile_id <> ''"),
            sqlite_where=sa.text("profile_id <> ''"),
        )


def downgrade() -> None:
    with op.batch_alter_table("reporting_outcomes", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_reporting_outcomes_site_profile_time",
            postgresql_where=sa.text("profile_id <> ''"),
            sqlite_where=sa.text("profile_id <> ''"),
        )
        batch_op.drop_column("profile_id")
        batch_op.drop_column("variant")

    with op.batch_alter_table("reporting_run_goals", schema=None) as batch_op:
        batch_op.drop_index("ix_reporting_run_goals_site_event")
        batch_op.drop_index("ix_reporting_run_goals_open_until")

    op.drop_table("reporting_run_goals")
    op.drop_table("reporting_feed_cursors")
    with op.batch_alter_table("reporting_conversions", schema=None) as batch_op:
        batch_op.drop_index("ix_reporting_conversions_site_run")
        batch_op.drop_index("ix_reporting_conversions_site_campaign")

    op.drop_table("reporting_conversions")
    with op.batch_alter_table("reporting_control_conversions", schema=None) as batch_op:
        batch_op.drop_index("ix_reporting_control_conversions_site_campaign")

    op.drop_table("reporting_control_conversions")
