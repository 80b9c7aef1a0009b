"""webhooks: run descriptions, endpoints, messages

Revision ID: e3649b3e0706
Revises: 60d7319fc0e7
Create Date: 2026-12-01 06:31:40.239489
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "e3649b3e0706"
down_revision = "60d7319fc0e7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reporting_run_descriptions",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("notification_title", sa.Text(), nullable=False),
        sa.Column("utm_source", sa.String(length=128), nullable=False),
        sa.Column("utm_medium", sa.String(length=128), nullable=False),
        sa.Column("utm_campaign", sa.String(length=128), nullable=False),
        sa.Column("utm_content", sa.String(length=128), nullable=False),
        sa.Column("utm_term", sa.String(length=128), nullable=False),
        sa.Column("variant_titles", sa.Text(), nullable=False),
        sa.Column("record_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "run_id", name=op.f("pk_reporting_run_descriptions")),
    )
    op.create_table(
        "reporting_webhook_endpoints",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("endpoint_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("takes_view", sa.Boolean(), nullable=False),
        sa.Column("takes_click", sa.Boolean(), nullable=False),
        sa.Column("takes_close", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "inactive",
                "paused",
                "disabled",
                name="state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("state_reason", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column(
            "previous_secret_expire_time", services.kit.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consecutive_failures", sa.BigInteger(), nullable=False),
        sa.Column("dead_streak", sa.Integer(), nullable=False),
        sa.Column("last_success_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "endpoint_id", name=op.f("pk_reporting_webhook_endpoints")
        ),
        sa.UniqueConstraint(
            "site_id", "request_id", name=op.f("uq_reporting_webhook_endpoints_site_id_request_id")
        ),
    )
    op.create_table(
        "reporting_webhook_messages",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("endpoint_id", sa.String(length=128), nullable=False),
        sa.Column(
            "event_type",
            sa.Enum(
                "view",
                "click",
                "close",
                name="event_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column("button", sa.String(length=128), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "dead",
                name="state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("due_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("first_attempt_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=False),
        sa.Column("dead_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_reporting_webhook_messages")),
    )
    with op.batch_alter_table("reporting_webhook_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reporting_webhook_messages_site_endpoint_state",
            ["site_id", "endpoint_id", "state"],
            unique=False,
        )
        batch_op.create_index(
            "ix_reporting_webhook_messages_site_state_dead",
            ["site_id", "state", "dead_time"],
            unique=False,
        )
        batch_op.create_index(
            "ix_reporting_webhook_messages_state_due", ["state", "due_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reporting_webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_reporting_webhook_messages_state_due")
        batch_op.drop_index("ix_reporting_webhook_messages_site_state_dead")
        batch_op.drop_index("ix_reporting_webhook_messages_site_endpoint_state")

    op.drop_table("reporting_webhook_messages")
    op.drop_table("reporting_webhook_endpoints")
    op.drop_table("reporting_run_descriptions")
