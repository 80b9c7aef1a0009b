"""The counters migration backfills runs, counters and hours from the rows stored before
it, exactly as the store keeps them (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, insert

from services.kit.db import _alembic_config, create_engine_for, sync_url
from services.reporting.domain.reports import build_report
from services.reporting.models import (
    ControlConversion,
    Conversion,
    DeliveryOutcome,
    EngagementEvent,
    RunAudience,
)
from services.reporting.store import ReportingStore
from tests.reporting.test_report_breakdowns import stored_counters

BEFORE_COUNTERS = "e3649b3e0706"
T0 = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)


def outcome(run_id: str, subscriber_id: str, status: str, **values: object) -> dict:
    row = {
        "site_id": "site_a", "run_id": run_id, "subscriber_id": subscriber_id,
        "campaign_id": "cmp_a", "status": status, "reason": "", "browser": "chrome",
        "occur_time": T0, "test": False, "variant": "", "profile_id": "",
    }  # fmt: skip
    return row | values


def event(subscriber_id: str, kind: str, button: str = "", minutes: int = 1) -> dict:
    return {
        "site_id": "site_a", "run_id": "run_1", "subscriber_id": subscriber_id, "kind": kind,
        "button": button, "campaign_id": "cmp_a", "occur_time": T0 + timedelta(minutes=minutes),
    }  # fmt: skip


class TestCountersBackfill:
    async def test_existing_rows_are_counted_as_the_store_counts_them(self, database_factory):
        url = database_factory()
        config = _alembic_config("reporting", url)
        command.upgrade(config, BEFORE_COUNTERS)
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(RunAudience),
                    [
                        {"site_id": "site_a", "run_id": "run_1", "campaign_id": "cmp_a",
                         "audience": 6, "record_time": T0, "test": False},
                        {"site_id": "site_a", "run_id": "run_t", "campaign_id": "cmp_a",
                         "audience": 50, "record_time": T0, "test": True},
                    ],
                )  # fmt: skip
                connection.execute(
                    insert(DeliveryOutcome),
                    [
                        outcome("run_1", "s1", "sent", variant="a", profile_id="p1"),
                        outcome("run_1", "s2", "sent", variant="b", browser="firefox",
                                occur_time=T0 + timedelta(hours=1)),
                        outcome("run_1", "s3", "failed", reason="timeout"),
                        outcome("run_1", "s4", "suppressed", reason="control_group",
                                profile_id="p4"),
                        outcome("run_1", "s5", "suppressed", reason="dnd"),
                        outcome("run_t", "s1", "sent", test=True),
                    ],
                )  # fmt: skip
                connection.execute(
                    insert(EngagementEvent),
                    [
                        event("s1", "viewed"),
                        event("s1", "clicked", minutes=2),
                        event("s1", "clicked", "action_1", minutes=3),
                        event("s2", "closed", minutes=70),
                        event("s9", "viewed"),  # its outcome never came
                    ],
                )
                connection.execute(
                    insert(Conversion),
                    [
                        {"site_id": "site_a", "event_id": f"e{n}", "run_id": "run_1",
                         "subscriber_id": "s1", "campaign_id": "cmp_a", "variant": "a",
                         "profile_id": "p1", "revenue": revenue,
                         "occur_time": T0 + timedelta(minutes=10)}
                        for n, revenue in ((1, 5.0), (2, 2.0))
                    ],
                )  # fmt: skip
                connection.execute(
                    insert(ControlConversion),
                    [{"site_id": "site_a", "run_id": "run_1", "profile_id": "p4",
                      "campaign_id": "cmp_a", "event_id": "e3", "occur_time": T0}],
                )  # fmt: skip
            command.upgrade(config, "head")
        finally:
            engine.dispose()

        store = ReportingStore(create_engine_for(url))
        assert await stored_counters(store, "site_a", "run_1") == tuple(
            await store.recount("site_a", "run_1")
        )
        run = build_report(await store.run_totals("site_a", "run_1"))
        campaign = build_report(await store.campaign_totals("site_a", "cmp_a"))
        test_run = await store.run_totals("site_a", "run_t")

        assert (run.audience, run.sent, run.failed, run.suppressed) == (6, 2, 1, 2)
        assert (run.viewed, run.clicked, run.closed) == (2, 1, 1)
        assert [(b.button, b.clicked) for b in run.clicked_by_button] == [("", 1), ("action_1", 1)]
        assert [(b.browser, b.sent, b.viewed, b.clicked) for b in run.browsers] == [
            ("chrome", 1, 1, 1), ("firefox", 1, 0, 0)
        ]  # fmt: skip
        assert (run.conversions, run.revenue) == (2, 7.0)
        assert (run.control_group, run.control_group_conversions) == (1, 1)
        assert run.last_sent_time == T0 + timedelta(hours=1)
        hour = T0.replace(minute=0)
        assert [
            (h.hour_start_time, h.sent, h.viewed, h.clicked, h.converted) for h in run.timeline
        ] == [(hour, 1, 2, 2, 2), (hour + timedelta(hours=1), 1, 0, 0, 0)]
        assert [(v.variant_id, v.sent, v.clicked, v.conversions) for v in run.variants] == [
            ("a", 1, 1, 2), ("b", 1, 0, 0)
        ]  # fmt: skip
        assert (campaign.runs, campaign.audience, campaign.sent) == (1, 6, 2)
        assert test_run is not None and test_run.test
