"""RegisterSubscriber: storing a browser subscription, idempotently, after full validation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc
import pytest
import pytest_asyncio

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from clarion.segment.v1 import subscriber_pb2
from services.kit.clock import FrozenClock
from services.segment.server import create_server
from tests.segment.helpers import (
    Site,
    browser_public_key,
    error_field,
    expect_error,
    list_all,
    push_subscription,
    register,
    register_request,
)
from tests.support.sites import StaticSiteResolver

INVALID = grpc.StatusCode.INVALID_ARGUMENT


class TestRegisterSubscriber:
    async def test_stores_a_new_active_subscriber(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, clock: FrozenClock
    ) -> None:
        subscription = push_subscription()
        response = await stub.RegisterSubscriber(
            register_request(
                push_subscription=subscription,
                browser=common_pb2.BROWSER_FIREFOX,
                timezone="America/New_York",
                profile_id="user-42",
            ),
            metadata=site.metadata,
        )

        assert response.created
        stored = response.subscriber
        assert stored.subscriber_id.startswith("sub_")
        assert stored.push_subscription == subscription
        assert stored.browser == common_pb2.BROWSER_FIREFOX
        assert stored.timezone == "America/New_York"
        assert stored.profile_id == "user-42"
        assert stored.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        assert stored.create_time.ToDatetime(tzinfo=UTC) == clock.now()
        assert stored.update_time == stored.create_time
        fetched = await stub.GetSubscriber(
            pb.GetSubscriberRequest(subscriber_id=stored.subscriber_id), metadata=site.metadata
        )
        assert fetched.subscriber == stored

    async def test_keeps_an_unknown_timezone_empty_and_unknown_browser_as_other(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        stored = await register(
            stub, site, browser=common_pb2.BROWSER_UNSPECIFIED, timezone="", profile_id=""
        )

        assert stored.timezone == ""
        assert stored.browser == common_pb2.BROWSER_OTHER
        assert stored.profile_id == ""

    async def test_accepts_plain_http_when_insecure_endpoints_are_allowed(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        endpoint = "http://127.0.0.1:8099/push/abc"
        stored = await register(stub, site, push_subscription=push_subscription(endpoint=endpoint))

        assert stored.push_subscription.endpoint == endpoint


class TestRegisterSameEndpointAgain:
    async def test_updates_and_reactivates_the_same_subscriber(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, clock: FrozenClock
    ) -> None:
        first = await register(stub, site)
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(subscriber_id=first.subscriber_id),
            metadata=site.metadata,
        )
        clock.advance(minutes=5)
        renewed = push_subscription(endpoint=first.push_subscription.endpoint)

        response = await stub.RegisterSubscriber(
            register_request(
                push_subscription=renewed,
                browser=common_pb2.BROWSER_EDGE,
                timezone="Asia/Tokyo",
                profile_id="user-7",
            ),
            metadata=site.metadata,
        )

        assert not response.created
        again = response.subscriber
        assert again.subscriber_id == first.subscriber_id
        assert again.push_subscription == renewed
        assert (again.browser, again.timezone, again.profile_id) == (
            common_pb2.BROWSER_EDGE,
            "Asia/Tokyo",
            "user-7",
        )
        assert again.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        assert again.unsubscribe_reason == ""
        assert again.create_time == first.create_time
        assert again.update_time.ToDatetime() > first.update_time.ToDatetime()
        assert [s.subscriber_id for s in await list_all(stub, site)] == [first.subscriber_id]

    async def test_same_endpoint_in_another_site_is_another_subscriber(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, other_site: Site
    ) -> None:
        subscription = push_subscription()
        mine = await stub.RegisterSubscriber(
            register_request(push_subscription=subscription), metadata=site.metadata
        )
        theirs = await stub.RegisterSubscriber(
            register_request(push_subscription=subscription), metadata=other_site.metadata
        )

        assert mine.created and theirs.created
        assert mine.subscriber.subscriber_id != theirs.subscriber.subscriber_id


def _bad(field: str, reason: str, fragment: str, **overrides: Any) -> Any:
    return pytest.param(overrides, field, reason, fragment, id=f"{field}:{fragment}")


_NOT_ON_CURVE = b"\x04" + b"\x01" * 64

BAD_REQUESTS = [
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "is required",
         push_subscription=push_subscription(endpoint="")),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "absolute",
         push_subscription=push_subscription(endpoint="/relative/path")),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "scheme 'ftp'",
         push_subscription=push_subscription(endpoint="ftp://push.example.test/x")),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "must name a host",
         push_subscription=push_subscription(endpoint="https:///no-host")),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "at most 2048",
         push_subscription=push_subscription(endpoint="https://push.example.test/" + "a" * 2048)),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "printable ASCII",
         push_subscription=push_subscription(endpoint="https://push.example.test/a b")),
    _bad("push_subscription.endpoint", "INVALID_ENDPOINT", "not a valid URL",
         push_subscription=push_subscription(endpoint="https://push.example.test:99999/x")),
    _bad("push_subscription.p256dh", "INVALID_P256DH", "got 64 bytes",
         push_subscription=push_subscription(p256dh=browser_public_key()[1:])),
    _bad("push_subscription.p256dh", "INVALID_P256DH", "got 0 bytes",
         push_subscription=push_subscription(p256dh=b"")),
    _bad("push_subscription.p256dh", "INVALID_P256DH", "got 0x03",
         push_subscription=push_subscription(p256dh=b"\x03" + browser_public_key()[1:])),
    _bad("push_subscription.p256dh", "INVALID_P256DH", "not on the curve",
         push_subscription=push_subscription(p256dh=_NOT_ON_CURVE)),
    _bad("push_subscription.auth", "INVALID_AUTH", "got 15 bytes",
         push_subscription=push_subscription(auth=b"\x00" * 15)),
    _bad("push_subscription.auth", "INVALID_AUTH", "got 0 bytes",
         push_subscription=push_subscription(auth=b"")),
    _bad("browser", "INVALID_BROWSER", "got 99", browser=99),
    _bad("timezone", "INVALID_TIMEZONE", "Mars/Olympus_Mons", timezone="Mars/Olympus_Mons"),
    _bad("timezone", "INVALID_TIMEZONE", "etc/passwd", timezone="../../../etc/passwd"),
    _bad("timezone", "INVALID_TIMEZONE", "zoneinfo", timezone="/usr/share/zoneinfo/UTC"),
    _bad("profile_id", "INVALID_PROFILE_ID", "at most 128", profile_id="p" * 129),
]


class TestRegisterRefusesBadInput:
    @pytest.mark.parametrize(("overrides", "field", "reason", "fragment"), BAD_REQUESTS)
    async def test_refuses_and_stores_nothing(
        self,
        stub: pb_grpc.SegmentServiceStub,
        site: Site,
        overrides: dict[str, Any],
        field: str,
        reason: str,
        fragment: str,
    ) -> None:
        error = await expect_error(
            stub.RegisterSubscriber(register_request(**overrides), metadata=site.metadata),
            INVALID,
            reason,
        )

        assert error_field(error) == field
        assert fragment in (error.details() or "")
        assert await list_all(stub, site) == []

    async def test_bad_update_leaves_the_registered_subscriber_unchanged(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        stored = await register(stub, site)

        await expect_error(
            stub.RegisterSubscriber(
                register_request(
                    push_subscription=push_subscription(
                        endpoint=stored.push_subscription.endpoint, auth=b"short"
                    ),
                    timezone="UTC",
                ),
                metadata=site.metadata,
            ),
            INVALID,
            "INVALID_AUTH",
        )

        assert await list_all(stub, site) == [stored]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict_stub(
    settings_factory, clock: FrozenClock, resolver: StaticSiteResolver  # type: ignore[no-untyped-def]
) -> AsyncIterator[pb_grpc.SegmentServiceStub]:
    """A server configured as in production: https:// endpoints only."""
    server = await create_server(
        "127.0.0.1:0",
        settings_factory(allow_insecure_endpoints=False),
        clock=clock,
        site_resolver=resolver,
    )
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield pb_grpc.SegmentServiceStub(channel)
    await server.stop()


class TestRegisterInProduction:
    async def test_refuses_plain_http_endpoints(
        self, strict_stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        error = await expect_error(
            strict_stub.RegisterSubscriber(
                register_request(
                    push_subscription=push_subscription(endpoint="http://push.example.test/x")
                ),
                metadata=site.metadata,
            ),
            INVALID,
            "INVALID_ENDPOINT",
        )

        assert "https://" in (error.details() or "")
        assert await list_all(strict_stub, site) == []

    async def test_accepts_https_endpoints(
        self, strict_stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        # Production accepts only the known push services' hosts (services.kit.egress).
        endpoint = "https://fcm.googleapis.com/fcm/send/" + uuid.uuid4().hex
        stored = await register(
            strict_stub, site, push_subscription=push_subscription(endpoint=endpoint)
        )

        assert stored.subscriber_id.startswith("sub_")
        assert stored.push_subscription.endpoint == endpoint
