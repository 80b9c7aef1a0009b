"""The demo's service workers report engagement through the real gateway, with the
subscriber id and engagement token taken from the push they decrypted (as delivery
will put them in each recipient's copy, see PushPayload in common.proto)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.common.v1 import common_pb2
from clarion.demo import MissingEngagementProof, register_browsers, report_engagement
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_pb2,
    reporting_service_pb2,
)
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.kit.tokens import engagement_token
from tests.gateway.conftest import GatewaySite, Stack
from tests.simulator.crafting import encrypt, post_push
from tests.support.sites import bearer


@pytest_asyncio.fixture(loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


async def deliver(
    stack: Stack,
    simulator: PushServiceSimulator,
    site: GatewaySite,
    subscriptions: list[SimulatedSubscription],
    subscriber_ids: list[str],
    *,
    signed: bool = True,
) -> str:
    """What delivery does for one run: a sent outcome per recipient, and a push to each
    whose JSON carries its subscriber id and engagement token (when `signed`)."""
    campaign_id, run_id = f"cmp_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
    await stack.reporting_internal.RecordDeliveryOutcomes(
        reporting_internal_service_pb2.RecordDeliveryOutcomesRequest(
            outcomes=[
                reporting_pb2.DeliveryOutcome(
                    run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id,
                    status=common_pb2.DELIVERY_STATUS_SENT,
                )
                for subscriber_id in subscriber_ids
            ]
        ),
        metadata=stack.internal(site.site_id),
    )
    vapid_key = ec.generate_private_key(ec.SECP256R1())
    for subscription, subscriber_id in zip(subscriptions, subscriber_ids, strict=True):
        payload = {"title": "Hi", "campaign_id": campaign_id, "run_id": run_id}
        if signed:
            payload["subscriber_id"] = subscriber_id
            payload["engagement_token"] = engagement_token(
                site.engagement_secret, site.site_id, run_id, subscriber_id
            )
        body = encrypt(subscription, json.dumps(payload).encode())
        status, text, _ = await post_push(stack.http, subscription, vapid_key, body=body)
        assert status == 201, text
    return campaign_id


async def report_of(
    stack: Stack, site: GatewaySite, campaign_id: str
) -> reporting_pb2.CampaignReport:
    response = await stack.reporting.GetCampaignReport(
        reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
        metadata=bearer(site.api_key),
    )
    return response.report


class TestDemoEngagement:
    async def test_views_and_clicks_from_the_decrypted_pushes_count(
        self, stack, site, simulator
    ):
        subscriptions = [simulator.mint_subscription() for _ in range(3)]
        ids = await register_browsers(stack.http, stack.gateway.url, site.site_id, subscriptions)
        campaign_id = await deliver(stack, simulator, site, subscriptions, ids)

        await report_engagement(
            stack.http, stack.gateway.url, site.site_id, simulator, subscriptions
        )

        report = await report_of(stack, site, campaign_id)
        assert (report.sent, report.viewed, report.clicked) == (3, 3, 1)

    async def test_a_push_without_an_engagement_token_is_reported_as_such(
        self, stack, site, simulator
    ):
        subscriptions = [simulator.mint_subscription()]
        ids = await register_browsers(stack.http, stack.gateway.url, site.site_id, subscriptions)
        campaign_id = await deliver(stack, simulator, site, subscriptions, ids, signed=False)

        with pytest.raises(MissingEngagementProof, match="engagement_token"):
            await report_engagement(
                stack.http, stack.gateway.url, site.site_id, simulator, subscriptions
            )

        assert (await report_of(stack, site, campaign_id)).viewed == 0

    async def test_the_control_api_shows_the_decrypted_json(self, stack, site, simulator):
        subscriptions = [simulator.mint_subscription()]
        ids = await register_browsers(stack.http, stack.gateway.url, site.site_id, subscriptions)
        await deliver(stack, simulator, site, subscriptions, ids)

        token = subscriptions[0].token
        async with stack.http.get(f"{simulator.base_url}/control/messages/{token}") as response:
            messages = await response.json()

        assert [m["payload"]["subscriber_id"] for m in messages] == ids
        assert messages[0]["payload"]["engagement_token"]
