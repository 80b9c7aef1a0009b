"""An A/B test with a test phase through the whole platform (campaign, segment,
delivery, reporting and the push simulator), on each database, with time moved by an
injected clock: the test run reaches about its share of the audience, each person their
variant; clicks recorded for one variant's recipients make it win; once the wait is over
the rest of the audience (everyone the test did not reach, no one twice) gets the winner
alone, decrypted at the simulator, and the rest run's variant decision says so. Without a
significant difference the rest gets the split and the decision says there is no
winner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest_asyncio

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
    reporting_service_pb2,
    reporting_service_pb2_grpc,
)
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.kit.auth import internal_metadata
from services.kit.clock import FrozenClock
from services.kit.grpcserver import client_channel
from tests.support.sites import bearer

PEOPLE = 200
TEST_PERCENT = 20
WAIT_SECONDS = 600
TITLES = {"A": "Spring sale: 20% off", "B": "Your spring discount is waiting"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ab_stack(settings_factory, clock: FrozenClock) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    running = await EmbeddedStack.start(settings, ephemeral_ports=True, clock=clock)
    yield running
    await running.stop()


@dataclass
class Push:
    """One decrypted push a browser got."""

    person: str
    run_id: str
    title: str
    subscriber_id: str


class Shop:
    """A site with PEOPLE browsers (one per profile) and the calls its backend makes."""

    def __init__(
        self, stack: EmbeddedStack, site_id: str, api_key: str, simulator: PushServiceSimulator
    ) -> None:
        self.stack = stack
        self.site_id = site_id
        self.auth = bearer(api_key)
        self.simulator = simulator
        self._channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
            client_channel(stack.address("reporting")),
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(self._channels[1])
        self.reports = reporting_service_pb2_grpc.ReportingServiceStub(self._channels[2])
        self.engagement = reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
            self._channels[2]
        )
        self.browsers: dict[str, SimulatedSubscription] = {}

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def subscribe_everyone(self) -> None:
        for number in range(PEOPLE):
            self.browsers[f"person-{number:03d}"] = self.simulator.mint_subscription()
        await self.segments.BatchRegisterSubscribers(
            segment_service_pb2.BatchRegisterSubscribersRequest(
                requests=[
                    segment_service_pb2.RegisterSubscriberRequest(
                        push_subscription=common_pb2.PushSubscription(
                            endpoint=browser.endpoint, p256dh=browser.p256dh, auth=browser.auth
                        ),
                        browser=common_pb2.BROWSER_CHROME,
                        timezone="Europe/Berlin",
                        profile_id=person,
                    )
                    for person, browser in self.browsers.items()
                ]
            ),
            metadata=self.auth,
            timeout=60,
        )

    async def ab_campaign(self) -> campaign_pb2.Campaign:
        created = await self.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Spring A/B",
                variants=[
                    campaign_pb2.Variant(
                        variant_id=variant_id,
                        split_percent=50,
                        notification=common_pb2.Notification(
                            title=title, target_url=f"https://shop.example/spring?v={variant_id}"
                        ),
                    )
                    for variant_id, title in TITLES.items()
                ],
                variant_test=campaign_pb2.VariantTest(
                    test_percent=TEST_PERCENT,
                    wait_seconds=WAIT_SECONDS,
                    metric=campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
                ),
            ),
            metadata=self.auth,
            timeout=10,
        )
        return created.campaign

    async def run(self, run_id: str) -> campaign_pb2.Run:
        return (
            await self.campaigns.GetRun(
                campaign_service_pb2.GetRunRequest(run_id=run_id), metadata=self.auth, timeout=10
            )
        ).run

    async def until(self, what: str, probe: Any, done: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await probe()
            if done(value):
                return value
            assert time.monotonic() < deadline, (
                f"{what} not reached within {timeout} s; last: {value!r}"
            )
            await asyncio.sleep(0.05)

    async def finished(self, run_id: str) -> campaign_pb2.Run:
        return await self.until(
            f"run {run_id} finished",
            lambda: self.run(run_id),
            lambda run: run.HasField("finish_time"),
        )

    def pushes(self, run_id: str) -> list[Push]:
        found = []
        for person, browser in self.browsers.items():
            for message in self.simulator.messages(browser.endpoint):
                payload = message.payload()
                if payload is not None and payload.get("run_id") == run_id:
                    found.append(Push(person, run_id, payload["title"], payload["subscriber_id"]))
        return found

    async def click(self, run: campaign_pb2.Run, pushes: list[Push]) -> None:
        """What the gateway records after checking each browser's engagement token."""
        await self.engagement.RecordEngagementEvents(
            reporting_internal_service_pb2.RecordEngagementEventsRequest(
                events=[
                    reporting_pb2.EngagementEvent(
                        run_id=run.run_id,
                        campaign_id=run.campaign_id,
                        subscriber_id=push.subscriber_id,
                        kind=common_pb2.ENGAGEMENT_KIND_CLICKED,
                    )
                    for push in pushes
                ]
            ),
            metadata=internal_metadata(self.stack.settings.internal_token_value, self.site_id),
            timeout=10,
        )

    async def run_report(self, run_id: str) -> reporting_pb2.RunReport | None:
        try:
            response = await self.reports.GetRunReport(
                reporting_service_pb2.GetRunReportRequest(run_id=run_id),
                metadata=self.auth,
                timeout=10,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.report

    async def test_then_rest(
        self, clock: FrozenClock, click_variant: str
    ) -> tuple[campaign_pb2.Run, list[Push], campaign_pb2.Run, list[Push]]:
        """Sends an A/B campaign's test run, records a click for every recipient of
        `click_variant` ("": none), waits until reporting has counted them, moves the
        clock past the rest time and waits for the rest run to finish: both runs and what
        their browsers got."""
        campaign = await self.ab_campaign()
        started = await self.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign.campaign_id),
            metadata=self.auth,
            timeout=10,
        )
        test = await self.finished(started.run.run_id)
        tested = self.pushes(test.run_id)
        clicked = [p for p in tested if click_variant and p.title == TITLES[click_variant]]
        if clicked:
            await self.click(test, clicked)

        def counted(report: reporting_pb2.RunReport | None) -> bool:
            if report is None:
                return False
            sent = sum(v.sent for v in report.variants)
            return sent == len(tested) and sum(v.clicked for v in report.variants) == len(clicked)

        await self.until("the test's report", lambda: self.run_report(test.run_id), counted)
        clock.advance(seconds=WAIT_SECONDS + 1)
        test = await self.until(
            "the rest run", lambda: self.run(test.run_id), lambda run: bool(run.related_run_id)
        )
        rest = await self.finished(test.related_run_id)
        return test, tested, rest, self.pushes(rest.run_id)


@pytest_asyncio.fixture(loop_scope="session")
async def shop(ab_stack: EmbeddedStack, simulator: PushServiceSimulator) -> AsyncIterator[Shop]:
    site = await create_site(ab_stack.settings, "A/B shop", "mailto:ops@shop.test")
    made = Shop(ab_stack, site.site_id, site.api_key, simulator)
    await made.subscribe_everyone()
    yield made
    await made.close()


def by_title(pushes: list[Push]) -> dict[str, int]:
    found: dict[str, int] = {}
    for push in pushes:
        found[push.title] = found.get(push.title, 0) + 1
    return found


class TestVariantTest:
    async def test_the_rest_of_the_audience_gets_the_variant_that_won(
        self, shop: Shop, clock: FrozenClock
    ) -> None:
        test, tested, rest, rested = await shop.test_then_rest(clock, click_variant="B")

        # The test: about its share of the audience, both variants.
        assert test.phase == campaign_pb2.RUN_PHASE_VARIANT_TEST
        assert test.state == campaign_pb2.RUN_STATE_DONE
        assert 10 <= len(tested) <= 80, len(tested)
        assert set(by_title(tested)) == set(TITLES.values())
        # The rest: everyone else, once, and all of them B.
        assert (rest.phase, rest.related_run_id, rest.state) == (
            campaign_pb2.RUN_PHASE_VARIANT_REST,
            test.run_id,
            campaign_pb2.RUN_STATE_DONE,
        )
        assert {p.person for p in tested}.isdisjoint({p.person for p in rested})
        assert len(tested) + len(rested) == PEOPLE
        assert by_title(rested) == {TITLES["B"]: PEOPLE - len(tested)}
        decision = rest.variant_decision
        b_sent = by_title(tested)[TITLES["B"]]
        assert (decision.winner_variant_id, decision.significant) == ("B", True)
        assert decision.z_score >= 1.96
        assert [(r.variant_id, r.sent, r.successes) for r in decision.results] == [
            ("A", len(tested) - b_sent, 0),
            ("B", b_sent, b_sent),
        ]
        assert test.rest_time.ToDatetime(UTC) - test.create_time.ToDatetime(UTC) == timedelta(
            seconds=WAIT_SECONDS
        )

    async def test_without_a_significant_difference_the_rest_gets_the_split(
        self, shop: Shop, clock: FrozenClock
    ) -> None:
        test, tested, rest, rested = await shop.test_then_rest(clock, click_variant="")

        assert {p.person for p in tested}.isdisjoint({p.person for p in rested})
        assert len(tested) + len(rested) == PEOPLE
        # Both variants again, each person the one the split gives it.
        assert set(by_title(rested)) == set(TITLES.values())
        decision = rest.variant_decision
        assert (decision.winner_variant_id, decision.significant, decision.z_score) == (
            "",
            False,
            0.0,
        )
        assert sum(r.sent for r in decision.results) == len(tested)
