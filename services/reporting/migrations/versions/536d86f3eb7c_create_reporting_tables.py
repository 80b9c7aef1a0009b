"""create reporting tables

Revision ID: 536d86f3eb7c
Revises:
Create Date: 2026-11-22 21:59:40.514047
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "536d86f3eb7c"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reporting_engagement_events",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("viewed", "clicked", "closed", name="kind", native_enum=False,
                    create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("button", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "run_id", "subscriber_id", "kind", "button",
            name=op.f("pk_reporting_engagement_events"),
        ),
    )
    op.create_index(
        "ix_reporting_engagement_events_site_campaign_kind",
        "reporting_engagement_events",
        ["site_id", "campaign_id", "kind"],
    )

    op.create_table(
        "reporting_outcomes",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum("sent", "failed", "suppressed", "expired", name="status", native_enum=False,
                    create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("browser", sa.String(length=16), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "run_id", "subscriber_id", name=op.f("pk_reporting_outcomes")
        ),
    )
    op.create_index(
        "ix_reporting_outcomes_site_campaign_status",
        "reporting_outcomes",
        ["site_id", "campaign_id", "status"],
    )

    op.create_table(
        "reporting_run_audiences",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("audience", sa.BigInteger(), nullable=False),
        sa.Column("record_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "run_id", name=op.f("pk_reporting_run_audiences")),
    )
    op.create_index(
        "ix_reporting_run_audiences_site_campaign",
        "reporting_run_audiences",
        ["site_id", "campaign_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_reporting_run_audiences_site_campaign", table_name="reporting_run_audiences")
    op.drop_table("reporting_run_audiences")
    op.drop_index("ix_reporting_outcomes_site_campaign_status", table_name="reporting_outcomes")
    op.drop_table("reporting_outcomes")
    op.drop_index(
        "ix_reporting_engagement_events_site_campaign_kind",
        table_name="reporting_engagement_events",
    )
    op.drop_table("reporting_engagement_events")
