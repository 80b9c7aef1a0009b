"""Report semantics (issue 11) against a real reporting server and database (SQLite, and
PostgreSQL when set): cumulative audience, by reason, per button, per browser, timeline,
lift with its interval, counters that never double count and match a full recount,
ListRunReports, GetRecipientActivity and unsubscribes after a push (a real segment feed).

Every expected number below is counted by hand from the rows each test records.
"""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import select

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_pb2
from clarion.reporting.v1 import reporting_service_pb2 as rs
from clarion.segment.v1 import segment_service_pb2
from services.kit.db import create_engine_for
from services.kit.errors import error_info
from services.reporting.models import ReportCounter, ReportHour
from services.reporting.store import (
    CounterRow,
    DeliveryStatus,
    OutcomeRecord,
    ReportingStore,
)
from tests.reporting.test_conversions import (
    CLICKED,
    CONTROL_GROUP,
    EXPIRED,
    FAILED,
    SENT,
    SUPPRESSED,
    VIEWED,
    campaign_report,
    engagement,
    eventually,
    following,
    goal,
    goal_event,
    new_id,
    record_engagement,
    record_run,
    refused,
    run_report,
    stamp,
    track,
)
from tests.reporting.test_conversions import (
    record_outcomes as _record_outcomes,
)
from tests.segment.helpers import push_subscription

CLOSED = common_pb2.ENGAGEMENT_KIND_CLOSED
CHROME = common_pb2.BROWSER_CHROME
FIREFOX = common_pb2.BROWSER_FIREFOX
R = common_pb2
BASE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def outcome(
    run_id: str,
    campaign_id: str,
    subscriber_id: str,
    at: datetime,
    *,
    status: int = SENT,
    reason: int = R.DELIVERY_REASON_UNSPECIFIED,
    browser: int = CHROME,
    variant: str = "",
    profile_id: str = "",
    test: bool = False,
) -> reporting_pb2.DeliveryOutcome:
    return reporting_pb2.DeliveryOutcome(
        run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id, status=status,
        reason=reason, browser=browser, occur_time=stamp(at), variant=variant,
        profile_id=profile_id, test=test,
    )  # fmt: skip


async def record_outcomes(reporting, site, *outcomes) -> int:
    await _record_outcomes(reporting, site, *outcomes)
    return 0


def reasons(counts) -> list[tuple[int, int]]:
    return [(c.reason, c.count) for c in counts]


async def list_runs(reporting, site, campaign_id, **request) -> rs.ListRunReportsResponse:
    return await reporting.stub.ListRunReports(
        rs.ListRunReportsRequest(campaign_id=campaign_id, **request), metadata=site.key
    )


def store_of(reporting) -> ReportingStore:
    return ReportingStore(create_engine_for(reporting.settings.database_url_for("reporting")))


async def stored_counters(store: ReportingStore, site_id: str, run_id: str):
    """The run's counter and hour rows as stored (zero rows left out)."""
    async with store._sessions() as session:  # the test reads the tables themselves
        counters = await session.execute(
            select(ReportCounter).where(
                ReportCounter.site_id == site_id, ReportCounter.run_id == run_id
            )
        )
        hours = await session.execute(
            select(ReportHour.hour, ReportHour.metric, ReportHour.n).where(
                ReportHour.site_id == site_id, ReportHour.run_id == run_id
            )
        )
        rows = sorted(
            CounterRow(c.variant, c.browser, c.metric, c.key, c.n, c.amount)
            for c in counters.scalars()
            if c.n or c.amount
        )
        return rows, sorted((h, m, n) for h, m, n in hours if n)


class TestBreakdowns:
    async def test_a_run_is_broken_down_by_reason_button_browser_and_hour(self, reporting, site):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        await record_run(reporting, site, run_id, campaign_id, audience=13)
        t10, t11 = BASE + timedelta(minutes=5), BASE + timedelta(hours=1, minutes=10)
        await record_outcomes(
            reporting, site,
            *(outcome(run_id, campaign_id, f"s{n}", t10) for n in (1, 2, 3, 4)),
            outcome(run_id, campaign_id, "s5", t11, browser=FIREFOX),
            outcome(run_id, campaign_id, "s6", t11, browser=FIREFOX),
            outcome(run_id, campaign_id, "f1", t10, status=FAILED,
                    reason=R.DELIVERY_REASON_PUSH_SERVICE_410),
            outcome(run_id, campaign_id, "f2", t10, status=FAILED,
                    reason=R.DELIVERY_REASON_PUSH_SERVICE_410, browser=FIREFOX),
            outcome(run_id, campaign_id, "f3", t10, status=FAILED,
                    reason=R.DELIVERY_REASON_TIMEOUT),
            outcome(run_id, campaign_id, "u1", t10, status=SUPPRESSED,
                    reason=R.DELIVERY_REASON_FREQUENCY_CAP),
            *(outcome(run_id, campaign_id, u, t10, status=SUPPRESSED,
                      reason=R.DELIVERY_REASON_DND) for u in ("u2", "u3")),
            outcome(run_id, campaign_id, "e1", t10, status=EXPIRED,
                    reason=R.DELIVERY_REASON_EXPIRED_TTL),
        )  # fmt: skip
        minute = timedelta(minutes=1)
        await record_engagement(
            reporting, site,
            engagement(run_id, campaign_id, "s1", VIEWED, BASE + 10 * minute),
            engagement(run_id, campaign_id, "s2", VIEWED, BASE + 12 * minute),
            engagement(run_id, campaign_id, "s5", VIEWED, BASE + 80 * minute),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE + 30 * minute),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE + 31 * minute, "action_1"),
            engagement(run_id, campaign_id, "s2", CLICKED, BASE + 40 * minute, "action_1"),
            engagement(run_id, campaign_id, "s5", CLICKED, BASE + 90 * minute, "action_2"),
            engagement(run_id, campaign_id, "s3", CLOSED, BASE + 20 * minute),
        )  # fmt: skip

        report = await run_report(reporting, site, run_id)

        assert (report.audience, report.sent, report.failed, report.suppressed) == (13, 6, 3, 3)
        assert (report.expired, report.viewed, report.clicked, report.closed) == (1, 3, 3, 1)
        assert report.click_through_rate == pytest.approx(3 / 6)
        assert report.view_rate == pytest.approx(3 / 6)
        assert report.sent_views_not_measured == 0
        assert report.last_sent_time.ToDatetime(tzinfo=UTC) == t11
        assert reasons(report.failed_by_reason) == [
            (R.DELIVERY_REASON_PUSH_SERVICE_410, 2), (R.DELIVERY_REASON_TIMEOUT, 1)
        ]  # fmt: skip
        assert reasons(report.suppressed_by_reason) == [
            (R.DELIVERY_REASON_DND, 2), (R.DELIVERY_REASON_FREQUENCY_CAP, 1)
        ]  # fmt: skip
        assert reasons(report.expired_by_reason) == [(R.DELIVERY_REASON_EXPIRED_TTL, 1)]
        assert [(b.button, b.clicked) for b in report.clicked_by_button] == [
            ("", 1), ("action_1", 2), ("action_2", 1)
        ]  # fmt: skip
        chrome, firefox = report.browsers
        assert (chrome.browser, chrome.audience, chrome.sent, chrome.failed) == (CHROME, 10, 4, 2)
        assert (chrome.suppressed, chrome.expired, chrome.viewed, chrome.clicked) == (3, 1, 2, 2)
        assert (chrome.closed, chrome.click_through_rate, chrome.views_measured) == (1, 0.5, True)
        assert (firefox.browser, firefox.audience, firefox.sent, firefox.failed) == (
            FIREFOX,
            3,
            2,
            1,
        )
        assert (firefox.viewed, firefox.clicked, firefox.click_through_rate) == (1, 1, 0.5)
        assert [
            (h.hour_start_time.ToDatetime(tzinfo=UTC), h.sent, h.viewed, h.clicked, h.converted)
            for h in report.timeline
        ] == [(BASE, 4, 2, 3, 0), (BASE + timedelta(hours=1), 2, 1, 1, 0)]
        assert not report.HasField("lift")

    async def test_the_campaign_audience_adds_up_over_recurring_runs_but_test_sends(
        self, reporting, site
    ):
        campaign_id = new_id("cmp")
        runs = [new_id("run") for _ in range(3)]
        for n, (run_id, audience) in enumerate(zip(runs, (100, 50, 30), strict=True)):
            await record_run(reporting, site, run_id, campaign_id, audience=audience)
            await record_outcomes(
                reporting, site,
                outcome(run_id, campaign_id, "s1", BASE + timedelta(days=n)),
                outcome(run_id, campaign_id, "s2", BASE + timedelta(days=n), status=FAILED,
                        reason=R.DELIVERY_REASON_TIMEOUT),
            )  # fmt: skip
        test_run = new_id("run")
        await record_run(reporting, site, test_run, campaign_id, audience=1000, test=True)
        await record_outcomes(
            reporting, site, outcome(test_run, campaign_id, "s1", BASE + timedelta(days=9),
                                     test=True)
        )  # fmt: skip

        report = await campaign_report(reporting, site, campaign_id)

        assert (report.runs, report.audience, report.sent, report.failed) == (3, 180, 3, 3)
        assert report.last_sent_time.ToDatetime(tzinfo=UTC) == BASE + timedelta(days=2)
        assert reasons(report.failed_by_reason) == [(R.DELIVERY_REASON_TIMEOUT, 3)]
        assert [b.audience for b in report.browsers] == [6]

    async def test_repeated_outcomes_and_events_are_counted_once(self, reporting, site):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        outcomes = [outcome(run_id, campaign_id, f"s{n}", BASE) for n in range(3)]
        events = [
            engagement(run_id, campaign_id, "s0", VIEWED, BASE),
            engagement(run_id, campaign_id, "s0", CLICKED, BASE, "action_1"),
        ]
        await record_outcomes(reporting, site, *outcomes, outcomes[0])
        await record_engagement(reporting, site, *events, events[1])
        before = await run_report(reporting, site, run_id)

        await record_outcomes(reporting, site, *outcomes)
        await record_engagement(reporting, site, *events)
        await record_engagement(reporting, site, events[0])

        after = await run_report(reporting, site, run_id)
        assert after == before
        assert (after.sent, after.viewed, after.clicked, after.browsers[0].audience) == (3, 1, 1, 3)
        assert [(b.button, b.clicked) for b in after.clicked_by_button] == [("action_1", 1)]
        assert [h.clicked for h in after.timeline] == [1]

    async def test_engagement_before_its_outcome_counts_under_the_outcomes_browser_and_variant(
        self, reporting, site
    ):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        await record_run(reporting, site, run_id, campaign_id, audience=3)
        await record_engagement(
            reporting, site,
            engagement(run_id, campaign_id, "s1", VIEWED, BASE),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE, "action_1"),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE),
            engagement(run_id, campaign_id, "s9", CLICKED, BASE),
        )  # fmt: skip
        early = await run_report(reporting, site, run_id)
        assert (early.viewed, early.clicked, list(early.browsers)) == (1, 2, [])

        await record_outcomes(
            reporting, site,
            outcome(run_id, campaign_id, "s1", BASE, browser=FIREFOX, variant="b"),
            outcome(run_id, campaign_id, "s2", BASE, variant="a"),
        )  # fmt: skip

        report = await run_report(reporting, site, run_id)
        # s9's outcome never came: its click counts in the totals, under no browser.
        assert (report.sent, report.viewed, report.clicked) == (2, 1, 2)
        assert [(b.browser, b.sent, b.viewed, b.clicked) for b in report.browsers] == [
            (CHROME, 1, 0, 0), (FIREFOX, 1, 1, 1)
        ]  # fmt: skip
        assert [(v.variant_id, v.sent, v.viewed, v.clicked) for v in report.variants] == [
            ("a", 1, 0, 0), ("b", 1, 1, 1)  # same first time: by id
        ]  # fmt: skip
        assert [(b.button, b.clicked) for b in report.clicked_by_button] == [
            ("", 2), ("action_1", 1)
        ]  # fmt: skip

    async def test_legacy_safari_views_are_not_measured(self, reporting, site):
        # Legacy Safari's outcomes, stored as delivery stores BROWSER_SAFARI_LEGACY
        # ("safari_legacy"), straight into the store: APNs reports no views.
        run_id, campaign_id = new_id("run"), new_id("cmp")
        store = store_of(reporting)
        await store.insert_outcomes(
            site.site_id,
            [
                OutcomeRecord(run_id, campaign_id, f"l{n}", DeliveryStatus.SENT, "",
                              "safari_legacy", BASE)
                for n in range(4)
            ],
        )  # fmt: skip
        await record_outcomes(
            reporting, site, *(outcome(run_id, campaign_id, f"c{n}", BASE) for n in range(2))
        )
        await record_engagement(
            reporting, site, engagement(run_id, campaign_id, "c0", VIEWED, BASE)
        )

        report = await run_report(reporting, site, run_id)

        assert (report.sent, report.viewed, report.sent_views_not_measured) == (6, 1, 4)
        assert report.view_rate == pytest.approx(1 / 2)  # over the 2 measured, not the 6
        assert [(b.browser, b.views_measured) for b in report.browsers] == [
            (CHROME, True), (common_pb2.BROWSER_SAFARI_LEGACY, False)
        ]  # fmt: skip


class TestCountersMatchARecount:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_any_order_of_batches_with_repeats_gives_the_recounted_counters(
        self, reporting, site, seed
    ):
        rng = random.Random(seed)
        run_id, campaign_id = new_id("run"), new_id("cmp")
        await record_run(reporting, site, run_id, campaign_id, audience=40)
        statuses = [
            (SENT, R.DELIVERY_REASON_UNSPECIFIED),
            (FAILED, R.DELIVERY_REASON_TIMEOUT),
            (SUPPRESSED, R.DELIVERY_REASON_DND),
        ]
        outcomes = [
            outcome(
                run_id, campaign_id, f"s{n}", BASE + timedelta(minutes=rng.randrange(180)),
                browser=rng.choice([CHROME, FIREFOX]), variant=rng.choice(["a", "b"]),
                status=(choice := rng.choice(statuses))[0], reason=choice[1],
            )
            for n in range(40)
        ]  # fmt: skip
        events = [
            engagement(
                run_id, campaign_id, f"s{rng.randrange(45)}", kind,
                BASE + timedelta(minutes=rng.randrange(240)),
                rng.choice(["", "action_1"]) if kind == CLICKED else "",
            )
            for kind in [VIEWED, CLICKED, CLOSED] * 30
        ]  # fmt: skip
        batches = [("o", outcomes[i : i + 7]) for i in range(0, 40, 7)]
        batches += [("e", events[i : i + 11]) for i in range(0, 90, 11)]
        batches += rng.sample(batches, 4)  # repeats
        rng.shuffle(batches)

        async def send(kind: str, items: list) -> None:
            if kind == "o":
                await record_outcomes(reporting, site, *items)
            else:
                await record_engagement(reporting, site, *items)

        # Concurrently, a few at a time: whichever of an outcome and its engagement is
        # stored second attributes the engagement.
        for start in range(0, len(batches), 4):
            await asyncio.gather(*(send(k, items) for k, items in batches[start : start + 4]))

        store = store_of(reporting)
        assert await stored_counters(store, site.site_id, run_id) == tuple(
            await store.recount(site.site_id, run_id)
        )
        report = await run_report(reporting, site, run_id)
        sent = {o.subscriber_id for o in outcomes if o.status == SENT}
        assert report.sent == len(sent)
        assert report.viewed == len({e.subscriber_id for e in events if e.kind == VIEWED})


class TestLift:
    async def test_lift_is_in_recipients_with_a_wald_interval(self, reporting, site):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        now = reporting.clock.now()
        await record_run(reporting, site, run_id, campaign_id, conversion_goal=goal())
        sent = [new_id("p") for _ in range(4)]
        control = [new_id("q") for _ in range(4)]
        pushed = now - timedelta(minutes=10)
        await record_outcomes(
            reporting, site,
            *(outcome(run_id, campaign_id, f"s{n}", pushed, profile_id=p)
              for n, p in enumerate(sent)),
            *(outcome(run_id, campaign_id, f"c{n}", pushed, profile_id=p, status=SUPPRESSED,
                      reason=CONTROL_GROUP) for n, p in enumerate(control)),
        )  # fmt: skip
        await following(reporting, site)
        # Two sent recipients convert (the first twice: one recipient, two conversions),
        # one held-out recipient does.
        await track(
            reporting, site,
            goal_event(sent[0], now - timedelta(minutes=5), amount=10.0),
            goal_event(sent[0], now - timedelta(minutes=4), amount=5.0),
            goal_event(sent[1], now - timedelta(minutes=3), amount=1.0),
            goal_event(control[2], now - timedelta(minutes=2), amount=7.0),
        )  # fmt: skip

        report = await eventually(
            lambda: run_report(reporting, site, run_id),
            lambda r: r.conversions >= 3 and r.control_group_conversions >= 1,
        )

        assert (report.conversions, report.revenue) == (3, 16.0)
        assert (report.control_group, report.control_group_conversions) == (4, 1)
        lift = report.lift
        assert (lift.sent_recipients, lift.sent_converted) == (4, 2)
        assert (lift.control_recipients, lift.control_converted) == (4, 1)
        assert (lift.sent_conversion_rate, lift.control_conversion_rate) == (0.5, 0.25)
        half = 1.96 * math.sqrt(0.5 * 0.5 / 4 + 0.25 * 0.75 / 4)  # 0.6482...
        assert lift.difference == pytest.approx(0.25)
        assert lift.difference_low == pytest.approx(0.25 - half)
        assert lift.difference_high == pytest.approx(0.25 + half)
        assert not lift.significant
        store = store_of(reporting)
        assert await stored_counters(store, site.site_id, run_id) == tuple(
            await store.recount(site.site_id, run_id)
        )
        hour = now.replace(minute=0, second=0, microsecond=0)
        assert sum(h.converted for h in report.timeline) == 3
        assert report.timeline[-1].hour_start_time.ToDatetime(tzinfo=UTC) <= hour


class TestListRunReports:
    async def test_runs_come_newest_first_in_pages(self, reporting, site):
        campaign_id = new_id("cmp")
        runs = []
        for audience in (1, 2, 3):
            run_id = new_id("run")
            await record_run(reporting, site, run_id, campaign_id, audience=audience)
            runs.append(run_id)
            reporting.clock.advance(seconds=60)
        test_run = new_id("run")
        await record_run(reporting, site, test_run, campaign_id, audience=9, test=True)

        first = await list_runs(reporting, site, campaign_id, page_size=2)
        second = await list_runs(
            reporting, site, campaign_id, page_size=2, page_token=first.next_page_token
        )
        with_test = await list_runs(reporting, site, campaign_id, include_test=True)

        assert [r.run_id for r in first.reports] == [runs[2], runs[1]]
        assert [r.audience for r in first.reports] == [3, 2]
        assert ([r.run_id for r in second.reports], second.next_page_token) == ([runs[0]], "")
        assert [(r.run_id, r.test) for r in with_test.reports] == [
            (test_run, True), (runs[2], False), (runs[1], False), (runs[0], False)
        ]  # fmt: skip

    @pytest.mark.parametrize("token", ["garbage", "eyJhZnRlciI6IngifQ"])
    async def test_a_tampered_page_token_is_refused(self, reporting, site, token):
        error = await refused(list_runs(reporting, site, new_id("cmp"), page_token=token))

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "INVALID_PAGE_TOKEN"

    async def test_another_sites_runs_are_not_listed(self, reporting, site, new_site):
        campaign_id = new_id("cmp")
        await record_run(reporting, site, new_id("run"), campaign_id)

        listed = await list_runs(reporting, new_site(), campaign_id)

        assert list(listed.reports) == []


class TestGetRecipientActivity:
    async def test_what_one_recipient_did_is_told(self, reporting, site, new_site):
        run_id, campaign_id = new_id("run"), new_id("cmp")
        await record_outcomes(
            reporting, site, outcome(run_id, campaign_id, "s1", BASE, variant="b")
        )
        await record_engagement(
            reporting, site,
            engagement(run_id, campaign_id, "s1", VIEWED, BASE + timedelta(seconds=5)),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE + timedelta(seconds=9), "action_2"),
            engagement(run_id, campaign_id, "s1", CLICKED, BASE + timedelta(seconds=30)),
        )  # fmt: skip

        response = await reporting.stub.GetRecipientActivity(
            rs.GetRecipientActivityRequest(run_id=run_id, subscriber_id="s1"), metadata=site.key
        )

        activity = response.activity
        assert (activity.status, activity.variant, activity.control_group) == (SENT, "b", False)
        assert activity.viewed_time.ToDatetime(tzinfo=UTC) == BASE + timedelta(seconds=5)
        assert activity.clicked_time.ToDatetime(tzinfo=UTC) == BASE + timedelta(seconds=9)
        assert (activity.clicked_button, activity.conversions) == ("action_2", 0)
        assert not activity.HasField("closed_time")
        for other_site, subscriber in ((site, "s2"), (new_site(), "s1")):
            error = await refused(
                reporting.stub.GetRecipientActivity(
                    rs.GetRecipientActivityRequest(run_id=run_id, subscriber_id=subscriber),
                    metadata=other_site.key,
                )
            )
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(error).reason == "RECIPIENT_ACTIVITY_NOT_FOUND"

    async def test_an_empty_subscriber_is_refused(self, reporting, site):
        error = await refused(
            reporting.stub.GetRecipientActivity(
                rs.GetRecipientActivityRequest(run_id="run_x"), metadata=site.key
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == "subscriber_id"


class TestUnsubscribesAfterPush:
    async def test_an_unsubscribe_within_a_day_of_a_push_is_credited_to_it_once(
        self, reporting, site
    ):
        subscribers = []
        for _ in range(3):
            registered = await reporting.segment_stub.RegisterSubscriber(
                segment_service_pb2.RegisterSubscriberRequest(
                    push_subscription=push_subscription(), browser=CHROME
                ),
                metadata=site.key,
            )
            subscribers.append(registered.subscriber.subscriber_id)
        now = reporting.clock.now()
        run_id, old_run, campaign_id = new_id("run"), new_id("run"), new_id("cmp")
        await record_outcomes(
            reporting, site,
            outcome(run_id, campaign_id, subscribers[0], now - timedelta(hours=2)),
            outcome(run_id, campaign_id, subscribers[1], now - timedelta(hours=2)),
            outcome(old_run, campaign_id, subscribers[2], now - timedelta(hours=30)),
        )  # fmt: skip
        await following(reporting, site, "\nUnsubscribed")

        # The first two unsubscribe within a day of their push; the third's was 30 h ago.
        for subscriber_id in subscribers:
            await reporting.segment_stub.UnsubscribeSubscriber(
                segment_service_pb2.UnsubscribeSubscriberRequest(subscriber_id=subscriber_id),
                metadata=site.key,
            )
        reporting.clock.advance(seconds=10)

        report = await eventually(
            lambda: campaign_report(reporting, site, campaign_id),
            lambda r: r.unsubscribes_after_push >= 2,
        )
        await asyncio.sleep(0.5)  # a few more passes of the follower change nothing

        assert (await campaign_report(reporting, site, campaign_id)).unsubscribes_after_push == 2
        assert (await run_report(reporting, site, run_id)).unsubscribes_after_push == 2
        assert (await run_report(reporting, site, old_run)).unsubscribes_after_push == 0
        assert report.unsubscribes_after_push == 2
        store = store_of(reporting)
        assert await stored_counters(store, site.site_id, run_id) == tuple(
            await store.recount(site.site_id, run_id)
        )
