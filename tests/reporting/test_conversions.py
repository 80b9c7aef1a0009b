"""Conversion goals, per-variant reports, control-group lift and GetRunReport, against a
real reporting server that follows a real segment server's event feed (SQLite, and
PostgreSQL when set).

Times: pushes and events carry explicit times around the frozen clock's now; after
tracking events a test moves the clock past the follower's settle time, so the
follower (polling in real time) may read them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2 as rs
from clarion.segment.v1 import profile_pb2, segment_service_pb2
from services.kit.db import create_sync_engine_for
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel
from services.reporting.domain.conversions import SETTLE
from services.reporting.server import create_server
from tests.reporting.conftest import CONVERSION_INTERVAL_SECONDS, ReportingUnderTest, Site

SENT = common_pb2.DELIVERY_STATUS_SENT
FAILED = common_pb2.DELIVERY_STATUS_FAILED
SUPPRESSED = common_pb2.DELIVERY_STATUS_SUPPRESSED
EXPIRED = common_pb2.DELIVERY_STATUS_EXPIRED
VIEWED = common_pb2.ENGAGEMENT_KIND_VIEWED
CLICKED = common_pb2.ENGAGEMENT_KIND_CLICKED
CONTROL_GROUP = common_pb2.DELIVERY_REASON_CONTROL_GROUP
HOUR = 3600

T = TypeVar("T")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def goal(
    event_name: str = "Purchase", window_seconds: int = HOUR, revenue_property: str = "amount"
) -> common_pb2.ConversionGoal:
    return common_pb2.ConversionGoal(
        event_name=event_name, window_seconds=window_seconds, revenue_property=revenue_property
    )


async def record_run(
    reporting: ReportingUnderTest,
    site: Site,
    run_id: str,
    campaign_id: str,
    audience: int = 10,
    *,
    conversion_goal: common_pb2.ConversionGoal | None = None,
    test: bool = False,
) -> None:
    request = ris.RecordRunAudienceRequest(
        run_id=run_id, campaign_id=campaign_id, audience=audience, test=test
    )
    if conversion_goal is not None:
        request.conversion_goal.CopyFrom(conversion_goal)
    await reporting.internal_stub.RecordRunAudience(request, metadata=site.internal)


def push(
    run_id: str,
    campaign_id: str,
    subscriber_id: str,
    at: datetime,
    *,
    profile_id: str = "",
    variant: str = "",
    status: int = SENT,
    reason: int = common_pb2.DELIVERY_REASON_UNSPECIFIED,
    test: bool = False,
) -> reporting_pb2.DeliveryOutcome:
    return reporting_pb2.DeliveryOutcome(
        run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id, status=status,
        reason=reason, browser=common_pb2.BROWSER_CHROME, occur_time=stamp(at),
        test=test, variant=variant, profile_id=profile_id,
    )  # fmt: skip


def held_out(
    run_id: str, campaign_id: str, subscriber_id: str, at: datetime, *, profile_id: str
) -> reporting_pb2.DeliveryOutcome:
    return push(
        run_id, campaign_id, subscriber_id, at, profile_id=profile_id, status=SUPPRESSED,
        reason=CONTROL_GROUP,
    )  # fmt: skip


async def record_outcomes(reporting: ReportingUnderTest, site: Site, *outcomes) -> None:
    await reporting.internal_stub.RecordDeliveryOutcomes(
        ris.RecordDeliveryOutcomesRequest(outcomes=outcomes), metadata=site.internal
    )


def engagement(
    run_id: str, campaign_id: str, subscriber_id: str, kind: int, at: datetime, button: str = ""
) -> reporting_pb2.EngagementEvent:
    return reporting_pb2.EngagementEvent(
        run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id, kind=kind,
        button=button, occur_time=stamp(at),
    )  # fmt: skip


async def record_engagement(reporting: ReportingUnderTest, site: Site, *events) -> None:
    await reporting.internal_stub.RecordEngagementEvents(
        ris.RecordEngagementEventsRequest(events=events), metadata=site.internal
    )


def goal_event(
    profile_id: str,
    at: datetime,
    name: str = "Purchase",
    *,
    subscriber_id: str = "",
    **properties: float | str,
) -> profile_pb2.Event:
    values = [
        profile_pb2.Property(
            name=key,
            value=profile_pb2.PropertyValue(string_value=value)
            if isinstance(value, str)
            else profile_pb2.PropertyValue(number_value=value),
        )
        for key, value in properties.items()
    ]
    return profile_pb2.Event(
        event_id=new_id("evt"), name=name, profile_id=profile_id, subscriber_id=subscriber_id,
        occur_time=stamp(at), properties=values,
    )  # fmt: skip


async def track(reporting: ReportingUnderTest, site: Site, *events: profile_pb2.Event) -> None:
    """Stores the events in segment (one transaction), then lets them settle."""
    response = await reporting.segment_stub.TrackEvents(
        segment_service_pb2.TrackEventsRequest(events=events), metadata=site.key
    )
    assert [r.ok for r in response.results] == [True] * len(events), response
    reporting.clock.advance(seconds=SETTLE.total_seconds() + 1)


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 30.0
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last seen: {value!r}")
        await asyncio.sleep(0.05)


async def stored(reporting: ReportingUnderTest, sql: str, **params: str) -> list[tuple]:
    """Runs `sql` on reporting's database, in a thread: the server runs on this event
    loop, and a blocking wait for SQLite's write lock would keep it from letting go."""

    def run() -> list[tuple]:
        engine = create_sync_engine_for(reporting.settings.database_url_for("reporting"))
        try:
            with engine.begin() as connection:
                result = connection.execute(text(sql), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    return await asyncio.to_thread(run)


async def feed_cursor(reporting: ReportingUnderTest, site: Site, event_name: str) -> str | None:
    rows = await stored(
        reporting,
        "SELECT cursor FROM reporting_feed_cursors WHERE site_id = :site_id "
        "AND event_name = :event_name",
        site_id=site.site_id, event_name=event_name,
    )  # fmt: skip
    return rows[0][0] if rows else None


async def following(reporting: ReportingUnderTest, site: Site, event_name: str = "Purchase") -> str:
    """Waits until the follower reads the site's events of this name (it starts at the
    feed's end when it first sees a goal with the name); returns its cursor."""

    async def probe() -> str | None:
        return await feed_cursor(reporting, site, event_name)

    return await eventually(probe, lambda cursor: cursor is not None)  # type: ignore[return-value]


async def campaign_report(
    reporting: ReportingUnderTest, site: Site, campaign_id: str
) -> reporting_pb2.CampaignReport:
    response = await reporting.stub.GetCampaignReport(
        rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=site.key
    )
    return response.report


async def run_report(
    reporting: ReportingUnderTest, site: Site, run_id: str
) -> reporting_pb2.RunReport:
    response = await reporting.stub.GetRunReport(
        rs.GetRunReportRequest(run_id=run_id), metadata=site.key
    )
    return response.report


async def campaign_converted(
    reporting: ReportingUnderTest, site: Site, campaign_id: str, conversions: int
) -> reporting_pb2.CampaignReport:
    return await eventually(
        lambda: campaign_report(reporting, site, campaign_id),
        lambda report: report.conversions >= conversions,
    )


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


class TestConversionGoal:
    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            (goal(event_name=""), "conversion_goal.event_name"),
            (goal(window_seconds=59), "conversion_goal.window_seconds"),
            (goal(window_seconds=0), "conversion_goal.window_seconds"),
            (goal(window_seconds=-5), "conversion_goal.window_seconds"),
            (goal(window_seconds=2_592_001), "conversion_goal.window_seconds"),
        ],
    )
    async def test_a_bad_goal_is_refused_and_nothing_is_stored(self, reporting, site, bad, field):
        run_id, campaign_id = new_id("run"), new_id("cmp")

        error = await refused(record_run(reporting, site, run_id, campaign_id, conversion_goal=bad))

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "INVALID_CONVERSION_GOAL"
        assert error_info(error).metadata["field"] == field
        not_found = await refused(run_report(reporting, site, run_id))
        assert not_found.code() == grpc.StatusCode.NOT_FOUND
        assert await stored(
            reporting, "SELECT run_id FROM reporting_run_goals WHERE site_id = :site_id",
            site_id=site.site_id,
        ) == []  # fmt: skip

    @pytest.mark.parametrize("window_seconds", [60, 2_592_000])
    async def test_a_window_of_a_minute_to_thirty_days_is_kept(
        self, reporting, site, window_seconds
    ):
        run_id, campaign_id = new_id("run"), new_id("cmp")

        await record_run(
            reporting,
            site,
            run_id,
            campaign_id,
            conversion_goal=goal(window_seconds=window_seconds),
        )

        assert await stored(
            reporting,
            "SELECT event_name, window_seconds, revenue_property FROM reporting_run_goals "
            "WHERE site_id = :site_id AND run_id = :run_id",
            site_id=site.site_id, run_id=run_id,
        ) == [("Purchase", window_seconds, "amount")]  # fmt: skip

    async def test_a_repeated_audience_keeps_one_goal_per_run(self, reporting, site):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        await record_run(reporting, site, run_id, campaign_id, 5, conversion_goal=goal())
        await record_run(reporting, site, run_id, campaign_id, 7, conversion_goal=goal())
        # A repeat without the goal (an older relay) does not take it away.
        await record_run(reporting, site, run_id, campaign_id, 7)

        report = await run_report(reporting, site, run_id)

        assert report.audience == 7
        assert await stored(
            reporting, "SELECT count(*) FROM reporting_run_goals WHERE site_id = :site_id",
            site_id=site.site_id,
        ) == [(1,)]  # fmt: skip


class TestVariants:
    async def test_each_variant_has_its_sends_engagement_and_click_through_rate(
        self, reporting, site
    ):
        campaign_id, run_id, test_run = new_id("cmp"), new_id("run"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, 8)
        await record_outcomes(
            reporting, site,
            # "b" is seen first, so it comes first.
            push(run_id, campaign_id, "s1", now - timedelta(minutes=9), variant="b"),
            push(run_id, campaign_id, "s2", now - timedelta(minutes=8), variant="a"),
            push(run_id, campaign_id, "s3", now - timedelta(minutes=8), variant="a"),
            push(run_id, campaign_id, "s4", now - timedelta(minutes=8), variant="a"),
            push(run_id, campaign_id, "s5", now - timedelta(minutes=8), variant="a"),
            push(run_id, campaign_id, "s6", now - timedelta(minutes=8), variant="a", status=FAILED,
                 reason=common_pb2.DELIVERY_REASON_PUSH_SERVICE_5XX),
            push(run_id, campaign_id, "s7", now - timedelta(minutes=7), variant="b"),
        )  # fmt: skip
        # A test send of variant "a" counts nowhere in the campaign's report.
        await record_run(reporting, site, test_run, campaign_id, 1, test=True)
        await record_outcomes(
            reporting, site, push(test_run, campaign_id, "s9", now, variant="a", test=True)
        )
        await record_engagement(
            reporting, site,
            engagement(run_id, campaign_id, "s2", VIEWED, now),
            engagement(run_id, campaign_id, "s3", VIEWED, now),
            engagement(run_id, campaign_id, "s2", CLICKED, now),
            engagement(run_id, campaign_id, "s2", CLICKED, now, button="buy"),
            engagement(run_id, campaign_id, "s7", VIEWED, now),
            engagement(run_id, campaign_id, "s7", CLICKED, now),
            engagement(test_run, campaign_id, "s9", CLICKED, now),
        )  # fmt: skip

        report = await campaign_report(reporting, site, campaign_id)

        assert [
            (v.variant_id, v.sent, v.viewed, v.clicked, v.click_through_rate)
            for v in report.variants
        ] == [("b", 2, 1, 1, 0.5), ("a", 4, 2, 1, 0.25)]
        assert (report.sent, report.failed, report.viewed, report.clicked) == (6, 1, 3, 2)
        run = await run_report(reporting, site, run_id)
        assert [(v.variant_id, v.sent, v.clicked) for v in run.variants] == [
            ("b", 2, 1),
            ("a", 4, 1),
        ]

    async def test_a_campaign_without_variants_has_no_variant_rows(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(
            reporting, site, push(run_id, campaign_id, "s1", reporting.clock.now())
        )

        report = await campaign_report(reporting, site, campaign_id)

        assert (report.sent, list(report.variants)) == (1, [])


class TestAttribution:
    async def test_clicked_beats_viewed_beats_sent_and_the_last_one_wins(self, reporting, site):
        campaign_id = new_id("cmp")
        r1, r2, r3 = new_id("run"), new_id("run"), new_id("run")
        now = reporting.clock.now()
        for run_id in (r1, r2, r3):
            await record_run(reporting, site, run_id, campaign_id, conversion_goal=goal())
        other_campaign, other_run, no_goal_run = new_id("cmp"), new_id("run"), new_id("run")
        await record_run(reporting, site, other_run, other_campaign, conversion_goal=goal("Signup"))
        await record_run(reporting, site, no_goal_run, other_campaign)
        await following(reporting, site)

        def minutes(n: int) -> datetime:
            return now + timedelta(minutes=n)

        outcomes = []
        for person in ("clicker", "viewer", "ignorer", "late_clicker"):
            outcomes += [
                push(r1, campaign_id, f"{person}_1", minutes(-50), profile_id=person),
                push(r2, campaign_id, f"{person}_2", minutes(-40), profile_id=person),
            ]
            if person != "late_clicker":
                outcomes.append(
                    push(r3, campaign_id, f"{person}_3", minutes(-30), profile_id=person)
                )
        # Later pushes of a run with another goal event, and of a run without a goal.
        outcomes += [
            push(other_run, other_campaign, "ignorer_9", minutes(-5), profile_id="ignorer"),
            push(no_goal_run, other_campaign, "viewer_9", minutes(-5), profile_id="viewer"),
        ]
        await record_outcomes(reporting, site, *outcomes)
        await record_engagement(
            reporting, site,
            # clicker: the first push clicked, the second only viewed.
            engagement(r1, campaign_id, "clicker_1", VIEWED, minutes(-49)),
            engagement(r1, campaign_id, "clicker_1", CLICKED, minutes(-49)),
            engagement(r2, campaign_id, "clicker_2", VIEWED, minutes(-39)),
            # viewer: the middle push viewed.
            engagement(r2, campaign_id, "viewer_2", VIEWED, minutes(-39)),
            # late_clicker: clicked the first push only after the event.
            engagement(r1, campaign_id, "late_clicker_1", CLICKED, minutes(5)),
        )  # fmt: skip

        await track(
            reporting, site,
            *(goal_event(p, now) for p in ("clicker", "viewer", "ignorer", "late_clicker")),
        )  # fmt: skip
        report = await campaign_converted(reporting, site, campaign_id, 4)

        assert (report.conversions, report.sent) == (4, 11)
        assert report.conversion_rate == pytest.approx(4 / 11)
        credited = {
            run_id: (await run_report(reporting, site, run_id)).conversions
            for run_id in (r1, r2, r3)
        }
        # clicker -> r1 (clicked), viewer -> r2 (viewed), ignorer -> r3 (last sent),
        # late_clicker -> r2 (its click came after the event: the last sent).
        assert credited == {r1: 1, r2: 2, r3: 1}
        assert await stored(
            reporting,
            "SELECT profile_id, subscriber_id FROM reporting_conversions "
            "WHERE site_id = :site_id ORDER BY profile_id",
            site_id=site.site_id,
        ) == [
            ("clicker", "clicker_1"), ("ignorer", "ignorer_3"),
            ("late_clicker", "late_clicker_2"), ("viewer", "viewer_2"),
        ]  # fmt: skip
        assert (await campaign_report(reporting, site, other_campaign)).conversions == 0

    async def test_the_window_is_counted_back_from_the_event_edges_included(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        now = reporting.clock.now()
        window = 600
        await record_run(
            reporting, site, run_id, campaign_id, conversion_goal=goal(window_seconds=window)
        )
        await following(reporting, site)
        await record_outcomes(
            reporting, site,
            push(run_id, campaign_id, "s_edge", now - timedelta(seconds=window), profile_id="edge"),
            push(run_id, campaign_id, "s_late", now - timedelta(seconds=window + 1),
                 profile_id="too_late"),
            push(run_id, campaign_id, "s_before", now, profile_id="before"),
        )  # fmt: skip

        # Outside the window, and an event a second before its push, first (one
        # transaction, so earlier in the feed than the one that counts).
        await track(
            reporting, site,
            goal_event("too_late", now),
            goal_event("before", now - timedelta(seconds=1)),
        )  # fmt: skip
        await track(reporting, site, goal_event("edge", now))
        report = await campaign_converted(reporting, site, campaign_id, 1)

        assert report.conversions == 1
        assert await stored(
            reporting, "SELECT profile_id FROM reporting_conversions WHERE site_id = :site_id",
            site_id=site.site_id,
        ) == [("edge",)]  # fmt: skip

    async def test_revenue_is_the_goals_numeric_property_else_zero(self, reporting, site):
        campaign_id, by_amount, by_coupon = new_id("cmp"), new_id("run"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, by_amount, campaign_id, conversion_goal=goal())
        await record_run(
            reporting, site, by_coupon, campaign_id,
            conversion_goal=goal(revenue_property="coupon"),
        )  # fmt: skip
        await following(reporting, site)
        before = now - timedelta(minutes=5)
        await record_outcomes(
            reporting, site,
            *(push(by_amount, campaign_id, f"s_{p}", before, profile_id=p) for p in "abc"),
            push(by_coupon, campaign_id, "s_d", before, profile_id="d"),
        )  # fmt: skip

        await track(
            reporting, site,
            goal_event("a", now, amount=19.5),
            goal_event("b", now, amount=30.25, coupon="SPRING"),
            goal_event("c", now),
            # Its goal's revenue property is text: a conversion with revenue 0.
            goal_event("d", now, amount=99.0, coupon="WINTER"),
        )  # fmt: skip
        report = await campaign_converted(reporting, site, campaign_id, 4)

        assert (report.conversions, report.revenue) == (4, pytest.approx(49.75))
        amount_run = await run_report(reporting, site, by_amount)
        coupon_run = await run_report(reporting, site, by_coupon)
        assert (amount_run.conversions, amount_run.revenue) == (3, pytest.approx(49.75))
        assert (coupon_run.conversions, coupon_run.revenue) == (1, 0.0)

    async def test_an_event_of_someone_without_a_push_is_not_credited(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, conversion_goal=goal())
        await following(reporting, site)
        before = now - timedelta(minutes=5)
        await record_outcomes(
            reporting, site,
            push(run_id, campaign_id, "s_known", before, profile_id="known"),
            # An anonymous subscriber's push: its events name no profile to credit.
            push(run_id, campaign_id, "s_anonymous", before),
            # A profile's failed push is no push.
            push(run_id, campaign_id, "s_failed", before, profile_id="failed", status=FAILED,
                 reason=common_pb2.DELIVERY_REASON_PUSH_SERVICE_410),
        )  # fmt: skip

        await track(
            reporting, site,
            goal_event("stranger", now),
            goal_event("", now, subscriber_id="s_anonymous"),
            goal_event("failed", now),
        )  # fmt: skip
        await track(reporting, site, goal_event("known", now))
        report = await campaign_converted(reporting, site, campaign_id, 1)

        assert (report.conversions, report.sent) == (1, 2)


class TestFollowing:
    async def test_a_goal_is_followed_until_a_week_after_its_last_pushs_window(
        self, reporting, site
    ):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        start = reporting.clock.now()
        await record_run(
            reporting, site, run_id, campaign_id, conversion_goal=goal(window_seconds=60)
        )
        await following(reporting, site)
        # A run sending over two days (a throttle): its window runs from its last push.
        last_push = start + timedelta(days=2)
        await record_outcomes(
            reporting, site, push(run_id, campaign_id, "s1", last_push, profile_id="p1")
        )
        reporting.clock.advance(days=9)

        # Tracked late, a week after the window: still read and credited.
        await track(reporting, site, goal_event("p1", last_push + timedelta(seconds=30)))
        await campaign_converted(reporting, site, campaign_id, 1)
        reporting.clock.advance(minutes=2)

        async def cursor() -> str | None:
            return await feed_cursor(reporting, site, "Purchase")

        assert await eventually(cursor, lambda value: value is None) is None


class TestControlGroup:
    async def test_held_out_people_who_convert_count_once_per_run(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, 5, conversion_goal=goal())
        await following(reporting, site)
        before = now - timedelta(minutes=30)
        await record_outcomes(
            reporting, site,
            held_out(run_id, campaign_id, "s_h1", before, profile_id="h1"),
            held_out(run_id, campaign_id, "s_h2", before, profile_id="h2"),
            held_out(run_id, campaign_id, "s_h3", now - timedelta(hours=2), profile_id="h3"),
            push(run_id, campaign_id, "s_p1", before, profile_id="p1"),
            push(run_id, campaign_id, "s_p2", before, profile_id="p2"),
        )  # fmt: skip

        await track(
            reporting, site,
            goal_event("h1", now - timedelta(minutes=1)),
            # h3 was held out longer ago than the window.
            goal_event("h3", now),
        )  # fmt: skip
        # h1 again, counted once.
        await track(reporting, site, goal_event("h1", now), goal_event("p1", now))
        report = await campaign_converted(reporting, site, campaign_id, 1)

        assert (report.control_group, report.control_group_conversions) == (3, 1)
        assert (report.sent, report.conversions, report.conversion_rate) == (2, 1, 0.5)
        assert (report.suppressed, report.revenue) == (3, 0.0)


class TestReadTwice:
    async def test_events_read_again_are_credited_once(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, conversion_goal=goal())
        start = await following(reporting, site)
        before = now - timedelta(minutes=5)
        await record_outcomes(
            reporting, site,
            *(push(run_id, campaign_id, f"s_{n}", before, profile_id=f"p{n}") for n in range(3)),
            held_out(run_id, campaign_id, "s_h", before, profile_id="h"),
        )  # fmt: skip
        await track(
            reporting, site,
            *(goal_event(f"p{n}", now, amount=10.0) for n in range(3)),
            goal_event("h", now),
        )  # fmt: skip
        await campaign_converted(reporting, site, campaign_id, 3)

        # As after restoring an older backup of reporting: the cursor moves back, so the
        # same events come again, followed by a new one.
        await stored(
            reporting,
            "UPDATE reporting_feed_cursors SET cursor = :cursor "
            "WHERE site_id = :site_id AND event_name = 'Purchase'",
            cursor=start, site_id=site.site_id,
        )  # fmt: skip
        await record_outcomes(
            reporting, site, push(run_id, campaign_id, "s_3", before, profile_id="p3")
        )
        await track(reporting, site, goal_event("p3", now, amount=1.0))
        report = await campaign_converted(reporting, site, campaign_id, 4)

        assert (report.conversions, report.revenue) == (4, pytest.approx(31.0))
        assert report.control_group_conversions == 1

    async def test_two_replicas_and_a_restart_credit_each_event_once(
        self, reporting, site, settings_factory
    ):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, conversion_goal=goal())
        await following(reporting, site)
        people = [f"person_{n}" for n in range(60)]
        await record_outcomes(
            reporting, site,
            *(push(run_id, campaign_id, f"s_{p}", now - timedelta(minutes=5), profile_id=p)
              for p in people),
        )  # fmt: skip
        # Two more reporting processes on the same database, each following the feed.
        settings = settings_factory(
            database_url=reporting.settings.database_url_for("reporting"),
            segment_address=reporting.settings.segment_address,
        )

        async def replica():  # type: ignore[no-untyped-def]
            server = await create_server(
                "127.0.0.1:0", settings, clock=reporting.clock, site_resolver=reporting.resolver,
                conversion_interval_seconds=CONVERSION_INTERVAL_SECONDS,
            )  # fmt: skip
            await server.start()
            return server

        replicas = [await replica(), await replica()]
        try:
            for batch in range(0, len(people), 10):
                await track(
                    reporting,
                    site,
                    *(goal_event(p, now, amount=1.0) for p in people[batch : batch + 10]),
                )
                if batch == 20:
                    await replicas[0].stop()
                    replicas[0] = await replica()
                await asyncio.sleep(CONVERSION_INTERVAL_SECONDS)
            report = await campaign_converted(reporting, site, campaign_id, 60)
            # What a replica reports is the same.
            channel = client_channel(replicas[1].address)
            try:
                seen = await reporting_service_pb2_grpc.ReportingServiceStub(
                    channel
                ).GetCampaignReport(
                    rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=site.key
                )
            finally:
                await channel.close()
        finally:
            for server in replicas:
                await server.stop()

        assert (report.conversions, report.revenue) == (60, 60.0)
        assert seen.report == report
        assert await stored(
            reporting,
            "SELECT count(*), count(DISTINCT profile_id) FROM reporting_conversions "
            "WHERE site_id = :site_id",
            site_id=site.site_id,
        ) == [(60, 60)]  # fmt: skip


class TestGetRunReport:
    async def test_one_runs_totals_variants_and_conversions(self, reporting, site):
        campaign_id, run_id, other_run = new_id("cmp"), new_id("run"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, 4, conversion_goal=goal())
        await record_run(reporting, site, other_run, campaign_id, 9, conversion_goal=goal())
        await following(reporting, site)
        before = now - timedelta(minutes=5)
        await record_outcomes(
            reporting, site,
            push(run_id, campaign_id, "s1", before, profile_id="p1", variant="a"),
            push(run_id, campaign_id, "s2", before, profile_id="p2", variant="b"),
            push(run_id, campaign_id, "s3", before, profile_id="p3", variant="b"),
            push(run_id, campaign_id, "s4", before, variant="a", status=EXPIRED,
                 reason=common_pb2.DELIVERY_REASON_EXPIRED_TTL),
            push(other_run, campaign_id, "s9", before, profile_id="p9", variant="a"),
        )  # fmt: skip
        await record_engagement(
            reporting, site,
            engagement(run_id, campaign_id, "s2", VIEWED, before),
            engagement(run_id, campaign_id, "s2", CLICKED, before),
            engagement(other_run, campaign_id, "s9", CLICKED, before),
        )  # fmt: skip
        await track(
            reporting, site,
            goal_event("p2", now, amount=12.0),
            goal_event("p3", now, amount=3.0),
            goal_event("p9", now, amount=100.0),
        )  # fmt: skip
        await campaign_converted(reporting, site, campaign_id, 3)

        report = await run_report(reporting, site, run_id)

        assert (report.run_id, report.campaign_id, report.audience, report.test) == (
            run_id,
            campaign_id,
            4,
            False,
        )
        assert (report.sent, report.failed, report.suppressed, report.expired) == (3, 0, 0, 1)
        assert (report.viewed, report.clicked) == (1, 1)
        assert report.click_through_rate == pytest.approx(1 / 3)
        assert (report.conversions, report.revenue) == (2, 15.0)
        assert report.conversion_rate == pytest.approx(2 / 3)
        assert [
            (v.variant_id, v.sent, v.viewed, v.clicked, v.conversions, v.conversion_rate, v.revenue)
            for v in report.variants
        ] == [("a", 1, 0, 0, 0, 0.0, 0.0), ("b", 2, 1, 1, 2, 1.0, 15.0)]

    async def test_a_test_send_is_reported_by_id_and_marked(self, reporting, site):
        campaign_id, run_id, test_run = new_id("cmp"), new_id("run"), new_id("run")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, 1)
        await record_outcomes(reporting, site, push(run_id, campaign_id, "s1", now))
        await record_run(reporting, site, test_run, campaign_id, 2, test=True)
        await record_outcomes(
            reporting, site,
            push(test_run, campaign_id, "t1", now, test=True),
            push(test_run, campaign_id, "t2", now, test=True),
        )  # fmt: skip

        test_report = await run_report(reporting, site, test_run)
        campaign = await campaign_report(reporting, site, campaign_id)

        assert (test_report.test, test_report.sent, test_report.audience) == (True, 2, 2)
        assert (campaign.runs, campaign.sent) == (1, 1)
        assert (await run_report(reporting, site, run_id)).test is False

    async def test_a_run_with_outcomes_only_is_found(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(
            reporting, site, push(run_id, campaign_id, "s1", reporting.clock.now())
        )

        report = await run_report(reporting, site, run_id)
        # Campaign reads it with the internal token naming the site.
        as_campaign = await reporting.stub.GetRunReport(
            rs.GetRunReportRequest(run_id=run_id), metadata=site.internal
        )

        assert (report.campaign_id, report.audience, report.sent) == (campaign_id, 0, 1)
        assert as_campaign.report == report

    async def test_an_unknown_or_another_sites_run_is_not_found(self, reporting, new_site):
        owner, stranger = new_site(), new_site()
        run_id = new_id("run")
        await record_run(reporting, owner, run_id, new_id("cmp"))

        for site, wanted in ((stranger, run_id), (owner, new_id("run"))):
            error = await refused(run_report(reporting, site, wanted))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(error).reason == "RUN_REPORT_NOT_FOUND"

    async def test_an_empty_run_id_is_refused(self, reporting, site):
        error = await refused(run_report(reporting, site, ""))

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == "run_id"
