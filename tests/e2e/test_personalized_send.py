"""A personalized campaign through the whole platform: profiles with properties in
segment, subscribers attached to them, a campaign whose title reads a profile property
with a fallback and whose click URL gets UTM parameters; every browser's push, decrypted
by the simulator with http_ece, says what that person should read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import profile_pb2, segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel
from tests.support.sites import bearer


class Shop:
    """A site's campaign and segment stubs on the embedded stack."""

    def __init__(self, stack: EmbeddedStack, api_key: str) -> None:
        self.auth = bearer(api_key)
        self._channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(self._channels[1])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def subscribe(
        self, simulator: PushServiceSimulator, profile_id: str, browser: int
    ) -> SimulatedSubscription:
        subscription = simulator.mint_subscription()
        await self.segments.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
                browser=browser,  # type: ignore[arg-type]
                timezone="Europe/Paris",
                profile_id=profile_id,
            ),
            metadata=self.auth,
            timeout=10,
        )
        return subscription

    async def set_properties(self, profile_id: str, **values: str) -> None:
        upserted = await self.segments.UpsertProfiles(
            segment_service_pb2.UpsertProfilesRequest(
                updates=[
                    profile_pb2.ProfileUpdate(
                        profile_id=profile_id,
                        operations=[
                            profile_pb2.PropertyOperation(
                                name=name, set=profile_pb2.PropertyValue(string_value=value)
                            )
                            for name, value in values.items()
                        ],
                    )
                ]
            ),
            metadata=self.auth,
            timeout=10,
        )
        assert all(result.ok for result in upserted.results), upserted

    async def send_and_wait(self, campaign_id: str, timeout: float = 60) -> campaign_pb2.Run:
        sent = await self.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=self.auth,
            timeout=10,
        )
        deadline = time.monotonic() + timeout
        while True:
            run = (
                await self.campaigns.GetRun(
                    campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id),
                    metadata=self.auth,
                    timeout=10,
                )
            ).run
            if run.state in (campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED) and (
                run.HasField("finish_time")
            ):
                return run
            assert time.monotonic() < deadline, f"run still {run.state}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def shop(stack: EmbeddedStack) -> AsyncIterator[Shop]:
    site = await create_site(stack.settings, "Personalized", "mailto:ops@shop.test")
    made = Shop(stack, site.api_key)
    yield made
    await made.close()


class TestPersonalizedCampaign:
    async def test_each_person_reads_its_own_name_and_every_click_is_tagged(
        self, shop: Shop, simulator: PushServiceSimulator
    ) -> None:
        await shop.set_properties("user-ann", first_name="Ann", city="Lyon")
        await shop.set_properties("user-bob", city="Nice")  # no first name
        browsers = {
            "ann-firefox": ("user-ann", common_pb2.BROWSER_FIREFOX),
            "ann-chrome": ("user-ann", common_pb2.BROWSER_CHROME),
            "bob": ("user-bob", common_pb2.BROWSER_CHROME),
            "anonymous": ("", common_pb2.BROWSER_EDGE),
        }
        subscriptions = {
            name: await shop.subscribe(simulator, profile_id, browser)
            for name, (profile_id, browser) in browsers.items()
        }
        created = await shop.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Spring sale",
                notification=common_pb2.Notification(
                    title='Hi {{ profile.first_name | default("there") }}',
                    body="Spring sale in {{ profile.city | default('your town') }}",
                    target_url="https://shop.test/sale?ref=push",
                ),
                utm=campaign_pb2.UtmParameters(source="clarion", medium="push", campaign="spring"),
            ),
            metadata=shop.auth,
            timeout=10,
        )

        run = await shop.send_and_wait(created.campaign.campaign_id)

        assert (run.state, run.audience, run.progress.sent) == (
            campaign_pb2.RUN_STATE_DONE,
            4,
            4,
        )
        got = {}
        for name, subscription in subscriptions.items():
            [message] = simulator.messages(subscription.endpoint)
            payload = message.payload()
            assert payload is not None, name
            got[name] = (payload["title"], payload["body"], payload["url"])
            assert payload["subscriber_id"] and payload["engagement_token"]
        tagged = (
            "https://shop.test/sale?ref=push&utm_source=clarion&utm_medium=push&utm_campaign=spring"
        )
        assert got == {
            "ann-firefox": ("Hi Ann", "Spring sale in Lyon", tagged),
            "ann-chrome": ("Hi Ann", "Spring sale in Lyon", tagged),
            "bob": ("Hi there", "Spring sale in Nice", tagged),
            "anonymous": ("Hi there", "Spring sale in your town", tagged),
        }


class TestSafariInAMixedAudience:
    async def test_safari_gets_the_message_without_what_it_cannot_show(
        self, shop: Shop, simulator: PushServiceSimulator
    ) -> None:
        await shop.set_properties("user-cy", first_name="Cy")
        chrome = await shop.subscribe(simulator, "user-cy", common_pb2.BROWSER_CHROME)
        safari = await shop.subscribe(simulator, "user-cy", common_pb2.BROWSER_SAFARI)
        created = await shop.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Rich",
                notification=common_pb2.Notification(
                    title="Hi {{ profile.first_name }}",
                    target_url="https://shop.test/new",
                    icon_url="https://shop.test/icon.png",
                    image_url="https://shop.test/hero.jpg",
                    actions=[
                        common_pb2.NotificationAction(
                            title="Buy {{ profile.first_name }}'s pick",
                            url="https://shop.test/pick",
                        )
                    ],
                    require_interaction=True,
                ),
            ),
            metadata=shop.auth,
            timeout=10,
        )
        dropped = sorted(w.field for w in created.warnings if w.reason == "SAFARI_FIELDS_DROPPED")
        assert dropped == [
            "notification.actions",
            "notification.icon_url",
            "notification.image_url",
        ]

        run = await shop.send_and_wait(created.campaign.campaign_id)

        assert (run.progress.sent, run.progress.failed) == (2, 0)
        [to_chrome] = simulator.messages(chrome.endpoint)
        [to_safari] = simulator.messages(safari.endpoint)
        on_chrome, on_safari = to_chrome.payload(), to_safari.payload()
        assert on_chrome is not None and on_safari is not None
        assert (on_chrome["title"], on_safari["title"]) == ("Hi Cy", "Hi Cy")
        assert on_chrome["icon"] == "https://shop.test/icon.png"
        assert on_chrome["image"] == "https://shop.test/hero.jpg"
        assert on_chrome["actions"] == [
            {"action": "action_1", "title": "Buy Cy's pick", "url": "https://shop.test/pick"}
        ]
        assert not {"icon", "image", "badge", "actions"} & set(on_safari)
        assert on_safari["url"] == "https://shop.test/new"
        assert on_safari["require_interaction"] is True
