"""Property: whatever the order, overlap and repetition of outcome, engagement and
conversion batches, the counters the store keeps equal a full recount of the rows it
stored (SQLite, through the store itself; the gRPC tests cover both databases)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit.db import create_engine_for, upgrade_to_head
from services.reporting.store import (
    ConversionRecord,
    DeliveryStatus,
    EngagementKind,
    EngagementRecord,
    OutcomeRecord,
    ReportingStore,
)
from tests.reporting.test_report_breakdowns import stored_counters

BASE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
STATUSES = [
    (DeliveryStatus.SENT, ""),
    (DeliveryStatus.FAILED, "timeout"),
    (DeliveryStatus.SUPPRESSED, "dnd"),
    (DeliveryStatus.SUPPRESSED, "control_group"),
]
KINDS = list(EngagementKind)

subscriber = st.integers(0, 7)
minute = st.integers(0, 300)
outcome_batch = st.tuples(
    st.just("o"),
    st.lists(
        st.tuples(
            subscriber,
            st.integers(0, len(STATUSES) - 1),
            st.sampled_from(["chrome", "firefox", ""]),
            st.sampled_from(["a", "b", ""]),
            minute,
        ),
        min_size=1,
        max_size=6,
    ),
)
event_batch = st.tuples(
    st.just("e"),
    st.lists(
        st.tuples(subscriber, st.integers(0, 2), st.sampled_from(["", "action_1"]), minute),
        min_size=1,
        max_size=6,
    ),
)
conversion_batch = st.tuples(
    st.just("c"),
    st.lists(
        st.tuples(st.integers(0, 9), subscriber, minute),
        min_size=1,
        max_size=4,
    ),
)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('counters') / 'reporting.db'}"
    upgrade_to_head("reporting", url)
    return url


async def _apply(url: str, batches: list) -> None:
    engine = create_engine_for(url)
    store = ReportingStore(engine)
    site_id, run_id, campaign_id = f"site_{uuid.uuid4().hex}", "run_1", "cmp_1"
    cursor = await store.start_feed_cursor(site_id, "Purchase", "0", BASE)
    try:
        for kind, items in batches:
            if kind == "o":
                await store.insert_outcomes(
                    site_id,
                    [
                        OutcomeRecord(
                            run_id, campaign_id, f"s{sub}", STATUSES[status][0],
                            STATUSES[status][1], browser, BASE + timedelta(minutes=at),
                            variant=variant, profile_id=f"p{sub}",
                        )
                        for sub, status, browser, variant, at in items
                    ],
                )  # fmt: skip
            elif kind == "e":
                await store.insert_engagement_events(
                    site_id,
                    [
                        EngagementRecord(
                            run_id, campaign_id, f"s{sub}", KINDS[k],
                            button if KINDS[k] is EngagementKind.CLICKED else "",
                            BASE + timedelta(minutes=at),
                        )
                        for sub, k, button, at in items
                    ],
                    BASE,
                )  # fmt: skip
            else:
                following = str(int(cursor) + 1)
                await store.apply_conversion_page(
                    site_id, "Purchase", cursor, following,
                    [
                        ConversionRecord(
                            # A push's variant is its outcome's: one per subscriber.
                            f"evt{event}", run_id, f"s{sub}", campaign_id, "ab"[sub % 2],
                            f"p{sub}", 1.5, BASE + timedelta(minutes=at),
                        )
                        for event, sub, at in items
                    ],
                    [], BASE,
                )  # fmt: skip
                cursor = following
        assert await stored_counters(store, site_id, run_id) == tuple(
            await store.recount(site_id, run_id)
        )
    finally:
        await engine.dispose()


class TestCountersProperty:
    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        batches=st.lists(
            st.one_of(outcome_batch, event_batch, conversion_batch), min_size=1, max_size=10
        )
    )
    def test_counters_equal_a_recount_in_any_order(self, sqlite_url: str, batches: list) -> None:
        asyncio.run(_apply(sqlite_url, batches))
