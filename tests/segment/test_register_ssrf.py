"""RegisterSubscriber refuses push endpoints that would make delivery an SSRF tool.

A server configured as in production (no CLARION_PUSH_TEST_ENDPOINTS): only https
URLs of known push services, and never an address that is not public, however it is
spelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import pytest_asyncio

from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.segment.server import create_server
from tests.segment.helpers import (
    Site,
    error_field,
    expect_error,
    list_all,
    push_subscription,
    register_request,
)
from tests.support.sites import StaticSiteResolver

INVALID = grpc.StatusCode.INVALID_ARGUMENT

SSRF_ENDPOINTS = [
    ("https://127.0.0.1:5432/", "127.0.0.1"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("https://10.0.0.5:6379/", "10.0.0.5"),
    ("https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
    ("https://[::1]/", "::1"),
    ("https://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("https://2130706433/", "127.0.0.1"),
    ("https://0x7f000001/", "127.0.0.1"),
    ("https://0177.0.0.1/", "127.0.0.1"),
    ("https://127.1/", "127.0.0.1"),
    ("https://100.64.0.1/", "100.64.0.1"),
]

REFUSED_OTHERWISE = [
    ("http://fcm.googleapis.com/fcm/send/x", "not_https"),
    ("https://user@fcm.googleapis.com/fcm/send/x", "userinfo"),
    ("https://fcm.googleapis.com:8443/fcm/send/x", "port_not_allowed"),
    ("https://localhost/x", "host_not_allowed"),
    ("https://fcm.googleapis.com.evil.example/x", "host_not_allowed"),
    ("https://push.example.test/wp/x", "host_not_allowed"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def production_stub(
    settings_factory: Callable[..., Settings], clock: FrozenClock, resolver: StaticSiteResolver
) -> AsyncIterator[pb_grpc.SegmentServiceStub]:
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


async def register_endpoint(
    stub: pb_grpc.SegmentServiceStub, site: Site, endpoint: str
) -> pb.RegisterSubscriberResponse:
    return await stub.RegisterSubscriber(
        register_request(push_subscription=push_subscription(endpoint=endpoint)),
        metadata=site.metadata,
    )


class TestRegisterRefusesSsrfEndpoints:
    @pytest.mark.parametrize(("endpoint", "address"), SSRF_ENDPOINTS)
    async def test_non_public_addresses_are_invalid_argument(
        self, production_stub: pb_grpc.SegmentServiceStub, site: Site, endpoint: str, address: str
    ) -> None:
        error = await expect_error(
            register_endpoint(production_stub, site, endpoint), INVALID, "INVALID_ENDPOINT"
        )

        details = error.details() or ""
        assert details.startswith(
            "push_subscription.endpoint must be an https URL of a known push service ("
        )
        assert "fcm.googleapis.com" in details
        assert address in details
        assert error_field(error) == "push_subscription.endpoint"
        assert await list_all(production_stub, site) == []

    @pytest.mark.parametrize(("endpoint", "refusal"), REFUSED_OTHERWISE)
    async def test_other_endpoints_off_the_policy_are_invalid_argument(
        self, production_stub: pb_grpc.SegmentServiceStub, site: Site, endpoint: str, refusal: str
    ) -> None:
        error = await expect_error(
            register_endpoint(production_stub, site, endpoint), INVALID, "INVALID_ENDPOINT"
        )

        assert (error.details() or "").startswith("push_subscription.endpoint ")
        assert await list_all(production_stub, site) == []

    @pytest.mark.parametrize(
        "endpoint",
        [
            "https://fcm.googleapis.com/fcm/send/dY3Xb7kIvtE:APA91bH",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAAAB",
            "https://web.push.apple.com/QGuQyavXutnMH5aHvKbRbRd8kMGMpKo0",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAD",
        ],
    )
    async def test_browser_push_services_are_accepted(
        self, production_stub: pb_grpc.SegmentServiceStub, site: Site, endpoint: str
    ) -> None:
        response = await register_endpoint(production_stub, site, endpoint)

        assert response.created
        assert response.subscriber.push_subscription.endpoint == endpoint


class TestRegisterInTestMode:
    async def test_the_simulator_on_loopback_http_is_accepted(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        response = await register_endpoint(stub, site, "http://127.0.0.1:8099/push/abc")

        assert response.created
