"""legacy Safari site configuration: site_legacy_safari (APNs token key, Website Push ID,
push-package certificate and icons), one row per site

Revision ID: 0fe7e4813f7e
Revises: 3b08aa45732f
Create Date: 2026-12-01 13:41:56.597134
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "0fe7e4813f7e"
down_revision = "3b08aa45732f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_legacy_safari",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("website_push_id", sa.String(length=128), nullable=False),
        sa.Column("website_name", sa.String(length=100), nullable=False),
        sa.Column("allowed_domains", sa.Text(), nullable=False),
        sa.Column("url_format_string", sa.String(length=2048), nullable=False),
        sa.Column("apns_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("apns_key_id", sa.String(length=10), nullable=False),
        sa.Column("apns_team_id", sa.String(length=10), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("certificate_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("certificate_chain", sa.Text(), nullable=False),
        sa.Column("certificate_subject", sa.Text(), nullable=False),
        sa.Column(
            "certificate_expire_time", services.kit.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("icon_16x16", sa.LargeBinary(), nullable=False),
        sa.Column("icon_16x16_2x", sa.LargeBinary(), nullable=False),
        sa.Column("icon_32x32", sa.LargeBinary(), nullable=False),
        sa.Column("icon_32x32_2x", sa.LargeBinary(), nullable=False),
        sa.Column("icon_128x128", sa.LargeBinary(), nullable=False),
        sa.Column("icon_128x128_2x", sa.LargeBinary(), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.site_id"],
            name=op.f("fk_site_legacy_safari_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_legacy_safari")),
        sa.UniqueConstraint("website_push_id", name=op.f("uq_site_legacy_safari_website_push_id")),
    )


def downgrade() -> None:
    op.drop_table("site_legacy_safari")
