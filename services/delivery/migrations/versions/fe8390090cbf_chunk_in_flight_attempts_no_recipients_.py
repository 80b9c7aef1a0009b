"""chunk in_flight attempts, no recipients-runs foreign key: delivery_chunks.in_flight (""
for every chunk before: nothing in flight) counts the attempts of requests started and
not yet answered; delivery_recipients loses its foreign key to delivery_runs (its
chunk's already guarantees the run)

Revision ID: fe8390090cbf
Revises: 46777cc3512c
Create Date: 2026-12-01 14:25:12.404797
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "fe8390090cbf"
down_revision = "46777cc3512c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("in_flight", sa.Text(), server_default="", nullable=False))

    with op.batch_alter_table("delivery_recipients", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_delivery_recipients_site_id_delivery_runs"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_recipients", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_delivery_recipients_site_id_delivery_runs"),
            "delivery_runs",
            ["site_id", "run_id"],
            ["site_id", "run_id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("delivery_chunks", schema=None) as batch_op:
        batch_op.drop_column("in_flight")
