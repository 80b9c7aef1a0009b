"""`GET /c/{click_token}`: a real run sent through delivery to the push-service
simulator, then clicked through the gateway's redirect, counted in reporting."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from google.protobuf import field_mask_pb2

from clarion.campaign.v1 import site_pb2, site_service_pb2, site_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2
from clarion.segment.v1 import profile_pb2, segment_service_pb2
from clarion.simulator import Behaviour, PushServiceSimulator
from services.gateway.server import create_gateway
from services.kit.clock import FrozenClock
from services.kit.grpcserver import client_channel
from services.kit.tokens import click_path, engagement_token
from services.reporting.server import create_server as create_reporting_server
from tests.gateway.conftest import GatewaySite, Stack
from tests.support.sites import bearer

SHOP = "https://shop.test"
UTM = "utm_source=clarion&utm_medium=push&utm_campaign=sale"


@pytest_asyncio.fixture(loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


class Sent:
    """A run to three subscribers, whose URL needs an `sku`: the first is sent it, the
    second's push service answers 410 (never sent), the third has no `sku` (suppressed)."""

    def __init__(self, site: GatewaySite, run_id: str, campaign_id: str, ids: list[str]):
        self.site, self.run_id, self.campaign_id = site, run_id, campaign_id
        self.sent_to, self.gone, self.suppressed = ids

    def path(self, subscriber_id: str | None = None, button: int = 0) -> str:
        subscriber_id = subscriber_id or self.sent_to
        token = engagement_token(
            self.site.engagement_secret, self.site.site_id, self.run_id, subscriber_id
        )
        return click_path(self.site.site_id, self.run_id, subscriber_id, token, button)


async def send_run(stack: Stack, simulator: PushServiceSimulator, site: GatewaySite) -> Sent:
    ids = []
    for n in range(3):
        sub = simulator.mint_subscription(application_server_key=site.vapid_public_key)
        if n == 1:
            simulator.set_behaviour(sub.endpoint, Behaviour(status=410))
        registered = await stack.segment.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
                ),
                browser=common_pb2.BROWSER_FIREFOX,
                timezone="UTC",
            ),
            metadata=bearer(site.api_key),
        )
        ids.append(registered.subscriber.subscriber_id)
    run_id, campaign_id = f"run_{uuid.uuid4().hex}", f"cmp_{uuid.uuid4().hex}"
    payload = {
        "title": "Sale",
        "url": f"{SHOP}/p/{{{{ event.sku }}}}?{UTM}",
        "campaign_id": campaign_id,
        "run_id": run_id,
        "actions": [{"action": "action_1", "title": "Cart", "url": f"{SHOP}/cart?{UTM}"}],
    }
    async with client_channel(stack.settings.delivery_address) as channel:
        delivery = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
        sku = profile_pb2.Property(
            name="sku", value=profile_pb2.PropertyValue(string_value="ab-12")
        )
        await delivery.StartDeliveryRun(
            delivery_service_pb2.StartDeliveryRunRequest(
                run_id=run_id,
                campaign_id=campaign_id,
                content=delivery_pb2.RunContent(
                    payload=json.dumps(payload).encode(),
                    ttl_seconds=3600,
                    suppress_missing_values=True,
                ),
                audience=delivery_pb2.RunAudience(
                    subscriber_ids=ids,
                    contexts=[
                        delivery_pb2.RecipientContext(subscriber_id=ids[n], event_properties=[sku])
                        for n in (0, 1)
                    ],
                ),
            ),
            metadata=stack.internal(site.site_id),
        )
        async with asyncio.timeout(30):
            while True:
                run = await delivery.GetDeliveryRun(
                    delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id),
                    metadata=stack.internal(site.site_id),
                )
                if run.delivery_run.HasField("finish_time"):
                    break
                await asyncio.sleep(0.05)
    progress = run.delivery_run.progress
    assert (progress.sent, progress.failed, progress.suppressed) == (1, 1, 1), progress
    return Sent(site, run_id, campaign_id, ids)


@pytest_asyncio.fixture(loop_scope="session")
async def sent(stack: Stack, simulator: PushServiceSimulator, site: GatewaySite) -> Sent:
    return await send_run(stack, simulator, site)


async def get(stack: Stack, path: str) -> tuple[int, dict[str, str], object]:
    async with stack.http.get(stack.url(path), allow_redirects=False) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, dict(response.headers), body


async def clicked(stack: Stack, sent: Sent) -> int:
    response = await stack.reporting.GetCampaignReport(
        reporting_service_pb2.GetCampaignReportRequest(campaign_id=sent.campaign_id),
        metadata=bearer(sent.site.api_key),
    )
    return response.report.clicked


class TestClickRedirect:
    async def test_a_click_is_recorded_and_redirected_to_the_personalized_url(self, stack, sent):
        status, headers, _ = await get(stack, sent.path())

        assert status == 302
        assert headers["Location"] == f"{SHOP}/p/ab-12?{UTM}"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert await clicked(stack, sent) == 1

    async def test_the_service_worker_and_the_redirect_count_one_click(self, stack, sent):
        async with stack.http.post(
            stack.url(f"/v1/sites/{sent.site.site_id}/events"),
            json={
                "kind": "clicked",
                "run_id": sent.run_id,
                "campaign_id": sent.campaign_id,
                "subscriber_id": sent.sent_to,
                "engagement_token": engagement_token(
                    sent.site.engagement_secret, sent.site.site_id, sent.run_id, sent.sent_to
                ),
            },
        ) as response:
            assert response.status == 202
        for _ in range(2):
            status, _, _ = await get(stack, sent.path())
            assert status == 302

        assert await clicked(stack, sent) == 1

    async def test_a_button_leads_to_its_own_url(self, stack, sent):
        status, headers, _ = await get(stack, sent.path(button=1))

        assert (status, headers["Location"]) == (302, f"{SHOP}/cart?{UTM}")
        assert await clicked(stack, sent) == 1  # distinct subscribers who clicked

    async def test_a_button_the_push_did_not_have_goes_home(self, stack, sent):
        status, headers, _ = await get(stack, sent.path(button=2))

        assert (status, headers["Location"]) == (302, f"{SHOP}/")
        assert await clicked(stack, sent) == 0

    async def test_a_tampered_token_goes_home_and_records_nothing(self, stack, sent):
        path = sent.path()
        tampered = path[:-1] + ("A" if path[-1] != "A" else "B")

        status, headers, _ = await get(stack, tampered)

        assert (status, headers["Location"]) == (302, f"{SHOP}/")
        assert await clicked(stack, sent) == 0

    async def test_a_recipient_never_sent_goes_home_and_records_nothing(self, stack, sent):
        status, headers, _ = await get(stack, sent.path(sent.gone))

        assert (status, headers["Location"]) == (302, f"{SHOP}/")
        assert await clicked(stack, sent) == 0

    async def test_a_recipient_suppressed_for_a_missing_value_goes_home_once_known(
        self, stack, sent
    ):
        # Its URL cannot be made (the value it lacks is in it): the site's home page is
        # the one the gateway learned from the site's other links.
        status, _, body = await get(stack, sent.path(sent.suppressed))
        assert (status, body["error"]["code"]) == (404, "CLICK_TARGET_NOT_FOUND")

        await get(stack, sent.path(sent.gone))
        status, headers, _ = await get(stack, sent.path(sent.suppressed))

        assert (status, headers["Location"]) == (302, f"{SHOP}/")
        assert await clicked(stack, sent) == 0

    async def test_a_push_older_than_30_days_goes_home_and_records_nothing(self, stack, sent):
        later = FrozenClock(datetime.now(UTC) + timedelta(days=30, minutes=1))
        gateway = await create_gateway("127.0.0.1:0", stack.settings, clock=later)
        await gateway.start()
        try:
            async with stack.http.get(gateway.url + sent.path(), allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (302, f"{SHOP}/")
        finally:
            await gateway.stop()
        assert await clicked(stack, sent) == 0

    @pytest.mark.parametrize(
        "path",
        ["/c/hello", "/c/a~b~c", "/c/site_nope~run_1~sub_1~" + "A" * 43, "/c/" + "~" * 500],
    )
    async def test_garbage_is_a_json_404(self, stack, path):
        status, _, body = await get(stack, path)

        assert status == 404
        assert body["error"]["code"] in ("CLICK_LINK_NOT_FOUND", "SITE_NOT_FOUND")

    async def test_a_link_naming_no_recipient_is_a_json_404(self, stack, site):
        token = engagement_token(site.engagement_secret, site.site_id, "run_x", "sub_x")
        status, _, body = await get(stack, click_path(site.site_id, "run_x", "sub_x", token))

        assert (status, body["error"]["code"]) == (404, "CLICK_TARGET_NOT_FOUND")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestReportingAway:
    async def test_the_click_is_redirected_and_recorded_once_reporting_is_back(self, stack, sent):
        address = f"127.0.0.1:{free_port()}"
        settings = stack.settings.model_copy(update={"reporting_address": address})
        gateway = await create_gateway("127.0.0.1:0", settings)
        await gateway.start()
        reporting = None
        try:
            async with stack.http.get(gateway.url + sent.path(), allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == f"{SHOP}/p/ab-12?{UTM}"
            assert await clicked(stack, sent) == 0

            reporting = await create_reporting_server(address, settings)
            await reporting.start()
            async with asyncio.timeout(30):
                while await clicked(stack, sent) == 0:
                    await asyncio.sleep(0.1)
        finally:
            await gateway.stop()
            if reporting is not None:
                await reporting.stop()
        assert await clicked(stack, sent) == 1


class TestSiteHomePage:
    async def test_a_site_home_page_set_by_its_operator_is_where_unfollowable_links_go(
        self, stack, sent
    ):
        async with client_channel(stack.settings.campaign_address) as channel:
            await site_service_pb2_grpc.SiteServiceStub(channel).UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(home_url="https://shop.example.com/welcome"),
                    update_mask=field_mask_pb2.FieldMask(paths=["home_url"]),
                ),
                metadata=bearer(sent.site.api_key),
            )
        # A fresh gateway: the first one cached the site without its home page.
        gateway = await create_gateway("127.0.0.1:0", stack.settings)
        await gateway.start()
        try:
            tampered = sent.path()[:-1] + ("A" if sent.path()[-1] != "A" else "B")
            for path in (sent.path(sent.suppressed), tampered):
                async with stack.http.get(gateway.url + path, allow_redirects=False) as response:
                    assert response.status == 302, path
                    assert response.headers["Location"] == "https://shop.example.com/welcome"
        finally:
            await gateway.stop()
        assert await clicked(stack, sent) == 0

    async def test_a_home_page_that_is_not_an_http_url_is_refused(self, stack, site):
        async with client_channel(stack.settings.campaign_address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await site_service_pb2_grpc.SiteServiceStub(channel).UpdateSite(
                    site_service_pb2.UpdateSiteRequest(
                        site=site_pb2.Site(home_url="javascript:alert(1)"),
                        update_mask=field_mask_pb2.FieldMask(paths=["home_url"]),
                    ),
                    metadata=bearer(site.api_key),
                )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "home_url" in refused.value.details()
