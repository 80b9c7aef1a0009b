"""Test sends through the whole platform: SendTestCampaign reaches exactly the browsers
of the site's test profiles, whatever the campaign's audience and schedule, with payloads
marked test; the campaign is left as it was and reports count nothing of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
    reporting_service_pb2,
    reporting_service_pb2_grpc,
)
from clarion.segment.v1 import profile_pb2, segment_pb2, segment_service_pb2
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.auth import internal_metadata
from services.kit.grpcserver import client_channel
from tests.e2e.test_cli_remote import clarion
from tests.e2e.test_personalized_send import Shop

NOT_TEST_PROFILES = segment_pb2.AudienceSelector(
    definition=segment_pb2.SegmentDefinition(
        condition=segment_pb2.Condition(
            negate=segment_pb2.Negation(condition=segment_pb2.Condition(test_profile=True))
        )
    )
)


@pytest.fixture
async def shop(stack: EmbeddedStack) -> AsyncIterator[tuple[Shop, str]]:
    site = await create_site(stack.settings, "Test sends", "mailto:ops@shop.test")
    made = Shop(stack, site.api_key)
    yield made, site.site_id
    await made.close()


async def mark_test_profile(shop: Shop, profile_id: str) -> None:
    upserted = await shop.segments.UpsertProfiles(
        segment_service_pb2.UpsertProfilesRequest(
            updates=[profile_pb2.ProfileUpdate(profile_id=profile_id, test_profile=True)]
        ),
        metadata=shop.auth,
        timeout=10,
    )
    assert all(result.ok for result in upserted.results), upserted


async def create_campaign(shop: Shop, **fields: object) -> campaign_pb2.Campaign:
    created = await shop.campaigns.CreateCampaign(
        campaign_service_pb2.CreateCampaignRequest(
            name="Spring sale",
            notification=common_pb2.Notification(
                title="Spring sale", body="All week", target_url="https://shop.test/sale"
            ),
            **fields,  # type: ignore[arg-type]
        ),
        metadata=shop.auth,
        timeout=10,
    )
    return created.campaign


async def finished(shop: Shop, run_id: str, timeout: float = 60) -> campaign_pb2.Run:
    deadline = time.monotonic() + timeout
    while True:
        run = (
            await shop.campaigns.GetRun(
                campaign_service_pb2.GetRunRequest(run_id=run_id), metadata=shop.auth, timeout=10
            )
        ).run
        if run.HasField("finish_time"):
            return run
        assert time.monotonic() < deadline, f"run still {run.state}"
        await asyncio.sleep(0.05)


async def send_test(shop: Shop, campaign_id: str) -> campaign_pb2.Run:
    started = await shop.campaigns.SendTestCampaign(
        campaign_service_pb2.SendTestCampaignRequest(campaign_id=campaign_id),
        metadata=shop.auth,
        timeout=10,
    )
    assert started.run.test
    return await finished(shop, started.run.run_id)


async def settled_report(
    stack: EmbeddedStack, shop: Shop, campaign_id: str, timeout: float = 30
) -> reporting_pb2.CampaignReport:
    deadline = time.monotonic() + timeout
    async with client_channel(stack.address("reporting")) as channel:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        while True:
            try:
                report = (
                    await stub.GetCampaignReport(
                        reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                        metadata=shop.auth,
                        timeout=5,
                    )
                ).report
                settled = report.sent + report.failed + report.suppressed + report.expired
                if report.audience and settled >= report.audience:
                    return report
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            assert time.monotonic() < deadline, f"report for {campaign_id} never settled"
            await asyncio.sleep(0.05)


class TestSendTestCampaign:
    async def test_only_test_profiles_get_it_marked_test_and_reports_leave_it_out(
        self, stack: EmbeddedStack, shop: tuple[Shop, str], simulator: PushServiceSimulator
    ) -> None:
        shop_, site_id = shop
        await mark_test_profile(shop_, "tester-ann")
        await mark_test_profile(shop_, "tester-bob")
        testers = {
            "ann": await shop_.subscribe(simulator, "tester-ann", common_pb2.BROWSER_CHROME),
            "bob": await shop_.subscribe(simulator, "tester-bob", common_pb2.BROWSER_SAFARI),
        }
        customer = await shop_.subscribe(simulator, "customer-cy", common_pb2.BROWSER_FIREFOX)
        later = Timestamp()
        later.FromDatetime(datetime.now(UTC) + timedelta(days=30))
        campaign = await create_campaign(
            shop_, audience=NOT_TEST_PROFILES, schedule=campaign_pb2.Schedule(at=later)
        )
        assert campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED

        run = await send_test(shop_, campaign.campaign_id)

        assert (run.state, run.audience, run.progress.sent, run.test) == (
            campaign_pb2.RUN_STATE_DONE,
            2,
            2,
            True,
        )
        assert simulator.messages(customer.endpoint) == []
        payloads = {}
        for name, subscription in testers.items():
            [message] = simulator.messages(subscription.endpoint)
            payload = message.payload()
            assert payload is not None, name
            payloads[name] = payload
        assert {name: (p["title"], p["test"]) for name, p in payloads.items()} == {
            "ann": ("Spring sale", True),
            "bob": ("Spring sale", True),  # Safari's own copy is marked too
        }
        after = (
            await shop_.campaigns.GetCampaign(
                campaign_service_pb2.GetCampaignRequest(campaign_id=campaign.campaign_id),
                metadata=shop_.auth,
                timeout=10,
            )
        ).campaign
        assert (after.state, after.next_run_time) == (campaign.state, campaign.next_run_time)
        # A browser's click on the test push is recorded, and counted nowhere either.
        async with client_channel(stack.address("reporting")) as channel:
            await reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
                channel
            ).RecordEngagementEvents(
                reporting_internal_service_pb2.RecordEngagementEventsRequest(
                    events=[
                        reporting_pb2.EngagementEvent(
                            run_id=run.run_id,
                            campaign_id=campaign.campaign_id,
                            subscriber_id=payloads["ann"]["subscriber_id"],
                            kind=common_pb2.ENGAGEMENT_KIND_CLICKED,
                        )
                    ]
                ),
                metadata=internal_metadata(stack.settings.internal_token_value, site_id),
                timeout=10,
            )

        sent = await shop_.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign.campaign_id),
            metadata=shop_.auth,
            timeout=10,
        )
        normal = await finished(shop_, sent.run.run_id)

        assert (normal.audience, normal.test) == (1, False)
        [message] = simulator.messages(customer.endpoint)
        assert "test" not in (message.payload() or {"test": "no payload"})
        # The test run's outcomes were relayed first (the outbox is relayed in order): had
        # they counted, the report would show them with the customer's.
        report = await settled_report(stack, shop_, campaign.campaign_id)
        assert (report.runs, report.audience, report.sent, report.clicked) == (1, 1, 1, 0)

    async def test_a_site_without_test_profiles_gets_an_empty_done_run(
        self, shop: tuple[Shop, str], simulator: PushServiceSimulator
    ) -> None:
        shop_, _ = shop
        customer = await shop_.subscribe(simulator, "customer-dee", common_pb2.BROWSER_CHROME)
        campaign = await create_campaign(shop_)

        run = await send_test(shop_, campaign.campaign_id)

        assert (run.state, run.audience, list(run.warnings)) == (
            campaign_pb2.RUN_STATE_DONE,
            0,
            [campaign_pb2.RUN_WARNING_EMPTY_AUDIENCE],
        )
        assert simulator.messages(customer.endpoint) == []

    async def test_an_unknown_campaign_is_not_found(self, shop: tuple[Shop, str]) -> None:
        shop_, _ = shop
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop_.campaigns.SendTestCampaign(
                campaign_service_pb2.SendTestCampaignRequest(campaign_id="cmp_nobody"),
                metadata=shop_.auth,
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_the_cli_starts_a_test_send(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        site = await create_site(stack.settings, "CLI test send", "mailto:ops@shop.test")
        shop_ = Shop(stack, site.api_key)
        await mark_test_profile(shop_, "tester-eve")
        tester = await shop_.subscribe(simulator, "tester-eve", common_pb2.BROWSER_CHROME)
        customer = await shop_.subscribe(simulator, "customer-fay", common_pb2.BROWSER_CHROME)
        campaign = await create_campaign(shop_)

        sent = await clarion(
            stack, site.api_key, "campaign", "test", campaign.campaign_id, "--watch"
        )

        assert sent.code == 0, sent.err
        final = sent.out.strip().splitlines()[-1]
        assert "done" in final and "sent 1" in final, sent.out
        assert len(simulator.messages(tester.endpoint)) == 1
        assert simulator.messages(customer.endpoint) == []
        await shop_.close()
