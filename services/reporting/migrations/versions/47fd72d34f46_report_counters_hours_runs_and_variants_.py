"""report counters, hours, runs and variants, backfilled

Revision ID: 47fd72d34f46
Revises: e3649b3e0706
Create Date: 2026-12-01 10:18:15.537388
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "47fd72d34f46"
down_revision = "e3649b3e0706"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reporting_counters",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("browser", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id",
            "run_id",
            "variant",
            "browser",
            "metric",
            "key",
            name=op.f("pk_reporting_counters"),
        ),
    )
    op.create_table(
        "reporting_hours",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("hour", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=24), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "run_id", "hour", "metric", name=op.f("pk_reporting_hours")
        ),
    )
    op.create_table(
        "reporting_run_variants",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("first_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "run_id", "variant", name=op.f("pk_reporting_run_variants")
        ),
    )
    op.create_table(
        "reporting_runs",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("test", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("audience", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("start_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sent_time", services.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site_id", "run_id", name=op.f("pk_reporting_runs")),
    )
    with op.batch_alter_table("reporting_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reporting_runs_site_campaign_start",
            ["site_id", "campaign_id", "start_time"],
            unique=False,
        )

    op.create_table(
        "reporting_unsubscribe_credits",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("subscriber_id", sa.String(length=128), nullable=False),
        sa.Column("occur_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_id", "event_id", name=op.f("pk_reporting_unsubscribe_credits")
        ),
    )
    _backfill()


def downgrade() -> None:
    op.drop_table("reporting_unsubscribe_credits")
    with op.batch_alter_table("reporting_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_reporting_runs_site_campaign_start")

    op.drop_table("reporting_runs")
    op.drop_table("reporting_run_variants")
    op.drop_table("reporting_hours")
    op.drop_table("reporting_counters")


def _hour(column: str) -> str:
    """SQL for the UTC hour `column` falls in, as each backend stores timestamps."""
    if op.get_bind().dialect.name == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"substr({column}, 1, 13) || ':00:00.000000'"


def _backfill() -> None:
    """Counters, hours, runs and variants of the rows stored before them, with the
    rules the store keeps them by (services/reporting/store.py)."""
    bind = op.get_bind()

    def rows(sql: str) -> list[tuple]:
        return [tuple(row) for row in bind.execute(sa.text(sql))]

    runs: dict[tuple[str, str], dict] = {}
    for site_id, run_id, campaign_id, audience, record_time, test in rows(
        "SELECT site_id, run_id, campaign_id, audience, record_time, test "
        "FROM reporting_run_audiences"
    ):
        runs[(site_id, run_id)] = {
            "site_id": site_id,
            "run_id": run_id,
            "campaign_id": campaign_id,
            "test": bool(test),
            "audience": audience,
            "start_time": record_time,
            "last_sent_time": None,
        }
    for site_id, run_id, campaign_id, test, first, last_sent in rows(
        "SELECT site_id, run_id, max(campaign_id), "
        "max(CASE WHEN test THEN 1 ELSE 0 END), min(occur_time), "
        "max(CASE WHEN status = 'sent' THEN occur_time END) "
        "FROM reporting_outcomes GROUP BY site_id, run_id"
    ):
        run = runs.setdefault(
            (site_id, run_id),
            {
                "site_id": site_id,
                "run_id": run_id,
                "campaign_id": campaign_id,
                "test": False,
                "audience": 0,
                "start_time": first,
                "last_sent_time": None,
            },
        )
        run["test"] = run["test"] or bool(test)
        run["start_time"] = min(run["start_time"], first)
        run["last_sent_time"] = last_sent
    runs_table = sa.table(
        "reporting_runs",
        *(
            sa.column(name)
            for name in (
                "site_id",
                "run_id",
                "campaign_id",
                "test",
                "audience",
                "start_time",
                "last_sent_time",
            )
        ),
    )
    if runs:
        bind.execute(runs_table.insert(), list(runs.values()))

    counters: dict[tuple, list] = {}

    def add(site_id, run_id, variant, browser, metric, key, n, amount=0.0) -> None:
        slot = counters.setdefault((site_id, run_id, variant, browser, metric, key), [0, 0.0])
        slot[0] += int(n)
        slot[1] += float(amount)

    for site_id, run_id, variant, browser, status, reason, n in rows(
        "SELECT site_id, run_id, variant, browser, status, reason, count(*) "
        "FROM reporting_outcomes GROUP BY site_id, run_id, variant, browser, status, reason"
    ):
        add(site_id, run_id, variant, browser, status, reason, n)
    # Engagement by the outcome's browser and variant; "*" while it has none.
    joined = (
        "FROM reporting_engagement_events e LEFT JOIN reporting_outcomes o "
        "ON o.site_id = e.site_id AND o.run_id = e.run_id AND o.subscriber_id = e.subscriber_id"
    )
    dims = "coalesce(o.variant, ''), CASE WHEN o.run_id IS NULL THEN '*' ELSE o.browser END"
    for site_id, run_id, variant, browser, kind, n in rows(
        f"SELECT e.site_id, e.run_id, {dims}, e.kind, count(DISTINCT e.subscriber_id) "
        f"{joined} GROUP BY e.site_id, e.run_id, 3, 4, e.kind"
    ):
        add(site_id, run_id, variant, browser, kind, "", n)
    for site_id, run_id, variant, browser, button, n in rows(
        f"SELECT e.site_id, e.run_id, {dims}, e.button, count(*) "
        f"{joined} WHERE e.kind = 'clicked' GROUP BY e.site_id, e.run_id, 3, 4, e.button"
    ):
        add(site_id, run_id, variant, browser, "button", button, n)
    for site_id, run_id, variant, n, revenue, converted in rows(
        "SELECT site_id, run_id, variant, count(*), sum(revenue), "
        "count(DISTINCT subscriber_id) FROM reporting_conversions "
        "GROUP BY site_id, run_id, variant"
    ):
        add(site_id, run_id, variant, "", "conversions", "", n, revenue)
        add(site_id, run_id, variant, "", "converted", "", converted)
    for site_id, run_id, n in rows(
        "SELECT c.site_id, c.run_id, count(*) FROM reporting_control_conversions c "
        "JOIN reporting_outcomes o ON o.site_id = c.site_id AND o.run_id = c.run_id "
        "AND o.profile_id = c.profile_id AND o.status = 'suppressed' "
        "AND o.reason = 'control_group' GROUP BY c.site_id, c.run_id"
    ):
        add(site_id, run_id, "", "", "control_converted", "", n)
    counters_table = sa.table(
        "reporting_counters",
        *(
            sa.column(name)
            for name in ("site_id", "run_id", "variant", "browser", "metric", "key", "n", "amount")
        ),
    )
    if counters:
        bind.execute(
            counters_table.insert(),
            [
                dict(
                    zip(
                        ("site_id", "run_id", "variant", "browser", "metric", "key"),
                        key,
                        strict=True,
                    ),
                    n=n,
                    amount=amount,
                )
                for key, (n, amount) in sorted(counters.items())
            ],
        )

    hours: list[tuple] = []
    hours += rows(
        f"SELECT site_id, run_id, {_hour('occur_time')}, 'sent', count(*) "
        "FROM reporting_outcomes WHERE status = 'sent' GROUP BY site_id, run_id, 3"
    )
    hours += rows(
        f"SELECT site_id, run_id, {_hour('occur_time')}, kind, count(*) "
        "FROM reporting_engagement_events WHERE kind IN ('viewed', 'clicked') "
        "GROUP BY site_id, run_id, 3, kind"
    )
    hours += rows(
        f"SELECT site_id, run_id, {_hour('occur_time')}, 'converted', count(*) "
        "FROM reporting_conversions GROUP BY site_id, run_id, 3"
    )
    hours_table = sa.table(
        "reporting_hours", *(sa.column(n) for n in ("site_id", "run_id", "hour", "metric", "n"))
    )
    if hours:
        bind.execute(
            hours_table.insert(),
            [
                dict(zip(("site_id", "run_id", "hour", "metric", "n"), h, strict=True))
                for h in hours
            ],
        )
    variants = rows(
        "SELECT site_id, run_id, variant, min(occur_time) FROM reporting_outcomes "
        "WHERE variant <> '' GROUP BY site_id, run_id, variant"
    )
    variants_table = sa.table(
        "reporting_run_variants",
        *(sa.column(n) for n in ("site_id", "run_id", "variant", "first_time")),
    )
    if variants:
        bind.execute(
            variants_table.insert(),
            [
                dict(zip(("site_id", "run_id", "variant", "first_time"), v, strict=True))
                for v in variants
            ],
        )
