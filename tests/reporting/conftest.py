"""A real reporting server per database backend, on an ephemeral port, with a real
segment server beside it (conversions are read from segment's event feed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from clarion.reporting.v1 import reporting_internal_service_pb2_grpc, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2_grpc
from services.kit.auth import internal_metadata
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import client_channel
from services.reporting.server import create_server
from services.segment.server import create_server as create_segment_server
from tests.support.sites import StaticSiteResolver, bearer

# The conversion follower reads goal events this often in tests (real time; which
# events it may read is decided by the frozen clock).
CONVERSION_INTERVAL_SECONDS = 0.1


@dataclass
class ReportingUnderTest:
    stub: reporting_service_pb2_grpc.ReportingServiceStub
    # The same server's ReportingInternalService (delivery's and the gateway's calls).
    internal_stub: reporting_internal_service_pb2_grpc.ReportingInternalServiceStub
    channel: grpc.aio.Channel
    resolver: StaticSiteResolver
    clock: FrozenClock
    settings: Settings
    # The segment server whose event feed reporting follows (TrackEvents with a site key).
    segment_stub: segment_service_pb2_grpc.SegmentServiceStub


@dataclass(frozen=True)
class Site:
    site_id: str
    api_key: str
    # The metadata delivery and the gateway use: internal token plus the site's id.
    internal: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)


@pytest_asyncio.fixture(scope="session")
async def reporting(settings_factory) -> AsyncIterator[ReportingUnderTest]:
    resolver = StaticSiteResolver()
    # One clock for both: segment stamps when it received an event, and reporting reads
    # an event only once it has been in segment a while.
    clock = FrozenClock()
    segment = await create_segment_server(
        "127.0.0.1:0", settings_factory(), clock=clock, site_resolver=resolver
    )
    await segment.start()
    settings = settings_factory(segment_address=segment.address)
    server = await create_server(
        "127.0.0.1:0",
        settings,
        clock=clock,
        site_resolver=resolver,
        conversion_interval_seconds=CONVERSION_INTERVAL_SECONDS,
    )
    await server.start()
    channel = client_channel(server.address)
    segment_channel = client_channel(segment.address)
    try:
        yield ReportingUnderTest(
            reporting_service_pb2_grpc.ReportingServiceStub(channel),
            reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(channel),
            channel,
            resolver,
            clock,
            settings,
            segment_service_pb2_grpc.SegmentServiceStub(segment_channel),
        )
    finally:
        await channel.close()
        await segment_channel.close()
        await server.stop()
        await segment.stop()


@pytest.fixture
def new_site(reporting: ReportingUnderTest):
    def make() -> Site:
        site_id, api_key = reporting.resolver.new_site()
        return Site(
            site_id, api_key, internal_metadata(reporting.settings.internal_token_value, site_id)
        )

    return make


@pytest.fixture
def site(new_site) -> Site:
    return new_site()
