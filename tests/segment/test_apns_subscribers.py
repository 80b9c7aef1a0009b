"""Legacy Safari subscribers: an APNs device token and its Website Push ID instead of a
Web Push subscription. Registering (idempotent by device token), the checks,
unsubscribing by device token, and what delivery reads: the audience page's
target.apns, reach by browser, a browser condition."""

from __future__ import annotations

import secrets
from datetime import timedelta

import grpc

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_pb2, subscriber_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from tests.segment.helpers import (
    Site,
    audience,
    error_field,
    expect_error,
    internal,
    push_subscription,
    register,
    register_request,
)
from tests.segment.test_audience import timestamp

Stub = pb_grpc.SegmentServiceStub
Internal = internal_pb_grpc.SegmentInternalServiceStub
PUSH_ID = "web.com.example.shop"


def device_token() -> str:
    return secrets.token_hex(32).upper()


def device(token: str | None = None, topic: str = PUSH_ID) -> common_pb2.ApnsDevice:
    return common_pb2.ApnsDevice(device_token=token or device_token(), topic=topic)


def device_request(**overrides: object) -> pb.RegisterSubscriberRequest:
    values: dict[str, object] = {
        "apns_device": device(),
        "browser": common_pb2.BROWSER_SAFARI_LEGACY,
    }
    values.update(overrides)
    return pb.RegisterSubscriberRequest(**values)  # type: ignore[arg-type]


async def register_device(
    stub: Stub, site: Site, **overrides: object
) -> pb.RegisterSubscriberResponse:
    return await stub.RegisterSubscriber(device_request(**overrides), metadata=site.metadata)


def browser_is(*browsers: int) -> segment_pb2.AudienceSelector:
    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(
            condition=segment_pb2.Condition(
                subscriber=segment_pb2.SubscriberCondition(browsers=list(browsers))
            )
        )
    )


class TestRegisterDevice:
    async def test_a_device_becomes_a_safari_legacy_subscriber_with_its_token_and_topic(
        self, stub: Stub, site: Site
    ) -> None:
        token = device_token()

        response = await register_device(
            stub, site, apns_device=device(token), timezone="Europe/Paris"
        )

        subscriber = response.subscriber
        assert response.created
        assert subscriber.browser == common_pb2.BROWSER_SAFARI_LEGACY
        assert subscriber.apns_device == common_pb2.ApnsDevice(device_token=token, topic=PUSH_ID)
        assert not subscriber.HasField("push_subscription")
        assert subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        assert subscriber.timezone == "Europe/Paris"
        got = await stub.GetSubscriber(
            pb.GetSubscriberRequest(subscriber_id=subscriber.subscriber_id), metadata=site.metadata
        )
        assert got.subscriber == subscriber

    async def test_an_unspecified_browser_means_safari_legacy(self, stub: Stub, site: Site) -> None:
        response = await register_device(stub, site, browser=common_pb2.BROWSER_UNSPECIFIED)

        assert response.subscriber.browser == common_pb2.BROWSER_SAFARI_LEGACY

    async def test_the_same_device_again_is_the_same_subscriber(
        self, stub: Stub, site: Site
    ) -> None:
        token = device_token()
        first = await register_device(stub, site, apns_device=device(token))

        again = await register_device(stub, site, apns_device=device(token), profile_id="ann")

        assert not again.created
        assert again.subscriber.subscriber_id == first.subscriber.subscriber_id
        assert again.subscriber.profile_id == "ann"

    async def test_a_batch_registers_devices_beside_web_push_subscriptions(
        self, stub: Stub, site: Site
    ) -> None:
        response = await stub.BatchRegisterSubscribers(
            pb.BatchRegisterSubscribersRequest(requests=[register_request(), device_request()]),
            metadata=site.metadata,
        )

        web, apple = (r.subscriber for r in response.responses)
        assert web.HasField("push_subscription") and not web.HasField("apns_device")
        assert apple.HasField("apns_device") and not apple.HasField("push_subscription")

    async def test_bad_devices_are_refused_naming_the_field(self, stub: Stub, site: Site) -> None:
        cases = [
            (
                device_request(apns_device=device("AB" * 31)),
                "INVALID_DEVICE_TOKEN",
                "apns_device.device_token",
            ),
            (
                device_request(apns_device=device("XY" * 32)),
                "INVALID_DEVICE_TOKEN",
                "apns_device.device_token",
            ),
            (
                device_request(apns_device=device(topic="com.example.shop")),
                "INVALID_WEBSITE_PUSH_ID",
                "apns_device.topic",
            ),
            (
                device_request(apns_device=device(topic="")),
                "INVALID_WEBSITE_PUSH_ID",
                "apns_device.topic",
            ),
            (
                device_request(push_subscription=push_subscription()),
                "INVALID_TARGET",
                "push_subscription",
            ),
            (device_request(browser=common_pb2.BROWSER_CHROME), "INVALID_BROWSER", "browser"),
            (device_request(vapid_key_id="vk_" + "0" * 32), "INVALID_VAPID_KEY_ID", "vapid_key_id"),
            # A Web Push subscription is never of the legacy browser.
            (
                register_request(browser=common_pb2.BROWSER_SAFARI_LEGACY),
                "INVALID_BROWSER",
                "browser",
            ),
        ]
        for request, reason, field in cases:
            error = await expect_error(
                stub.RegisterSubscriber(request, metadata=site.metadata),
                grpc.StatusCode.INVALID_ARGUMENT,
                reason,
            )
            assert error_field(error) == field
        listed = await stub.ListSubscribers(pb.ListSubscribersRequest(), metadata=site.metadata)
        assert not listed.subscribers  # nothing was stored


class TestUnsubscribeDevice:
    async def test_by_device_token_and_again_is_harmless(self, stub: Stub, site: Site) -> None:
        token = device_token()
        registered = (await register_device(stub, site, apns_device=device(token))).subscriber

        first = await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(
                apns_device=device(token), reason="safari_unregistered"
            ),
            metadata=site.metadata,
        )
        again = await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(apns_device=common_pb2.ApnsDevice(device_token=token)),
            metadata=site.metadata,
        )

        assert first.subscriber.subscriber_id == registered.subscriber_id
        assert first.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
        assert again.subscriber.unsubscribe_reason == "safari_unregistered"

    async def test_a_registration_after_it_is_active_again(self, stub: Stub, site: Site) -> None:
        token = device_token()
        await register_device(stub, site, apns_device=device(token))
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(apns_device=device(token)), metadata=site.metadata
        )

        again = await register_device(stub, site, apns_device=device(token))

        assert again.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE

    async def test_an_unknown_device_another_topic_or_another_site_is_not_found(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        token = device_token()
        await register_device(stub, site, apns_device=device(token))

        for request, where in [
            (pb.UnsubscribeSubscriberRequest(apns_device=device()), site),
            (
                pb.UnsubscribeSubscriberRequest(apns_device=device(token, "web.com.other.shop")),
                site,
            ),
            (pb.UnsubscribeSubscriberRequest(apns_device=device(token)), other_site),
        ]:
            await expect_error(
                stub.UnsubscribeSubscriber(request, metadata=where.metadata),
                grpc.StatusCode.NOT_FOUND,
                "SUBSCRIBER_NOT_FOUND",
            )


class TestWhatDeliveryReads:
    async def test_the_audience_page_carries_the_device_as_target_apns(
        self, stub: Stub, internal_stub: Internal, settings: Settings, site: Site,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        token = device_token()
        apple = (
            await register_device(stub, site, apns_device=device(token), profile_id="ann")
        ).subscriber
        web = await register(stub, site, profile_id="ann")

        members = await audience(internal_stub, settings, site, clock.now() + timedelta(seconds=1))

        by_id = {m.subscriber_id: m for m in members}
        member = by_id[apple.subscriber_id]
        assert member.browser == common_pb2.BROWSER_SAFARI_LEGACY
        assert member.target.WhichOneof("target") == "apns"
        assert member.target.apns == common_pb2.ApnsDevice(device_token=token, topic=PUSH_ID)
        assert not member.vapid_key_id
        assert by_id[web.subscriber_id].target.WhichOneof("target") == "web_push"
        listed = await audience(
            internal_stub, settings, site, clock.now() + timedelta(seconds=1), profile_ids=["ann"]
        )
        assert {m.subscriber_id: m.target.WhichOneof("target") for m in listed} == {
            apple.subscriber_id: "apns",
            web.subscriber_id: "web_push",
        }

    async def test_reach_counts_the_browser_and_a_condition_selects_it_for_a_run(
        self, stub: Stub, internal_stub: Internal, settings: Settings, site: Site,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        apple = [(await register_device(stub, site)).subscriber for _ in range(2)]
        await register(stub, site)

        reach = await stub.EstimateReach(
            pb.EstimateReachRequest(exact=True), metadata=site.metadata
        )
        only_legacy = await stub.EstimateReach(
            pb.EstimateReachRequest(
                audience=browser_is(common_pb2.BROWSER_SAFARI_LEGACY), exact=True
            ),
            metadata=site.metadata,
        )
        kept = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=timestamp(clock.now() + timedelta(seconds=1)),
                audience=browser_is(common_pb2.BROWSER_SAFARI_LEGACY),
                audience_key="run_legacy_safari",
            ),
            metadata=internal(settings, site),
        )
        possible = await internal_stub.ValidateAudience(
            internal_pb.ValidateAudienceRequest(), metadata=internal(settings, site)
        )

        assert {b.browser: b.subscribers for b in reach.browsers} == {
            common_pb2.BROWSER_SAFARI_LEGACY: 2,
            common_pb2.BROWSER_CHROME: 1,
        }
        assert only_legacy.reachable_subscribers == 2
        assert sorted(m.subscriber_id for m in kept.members) == sorted(
            s.subscriber_id for s in apple
        )
        assert all(m.target.apns.topic == PUSH_ID for m in kept.members)
        assert common_pb2.BROWSER_SAFARI_LEGACY in possible.possible_browsers
