"""A real reporting server per database backend, on an ephemeral port, with a real
segment server beside it (conversions are read from segment's event feed); for
webhooks, reporting servers of their own and a real HTTP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from clarion.reporting.v1 import (
    reporting_internal_service_pb2_grpc,
    reporting_service_pb2_grpc,
    webhook_service_pb2_grpc,
)
from clarion.segment.v1 import segment_service_pb2_grpc
from services.kit.auth import internal_metadata
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import client_channel
from services.reporting.server import create_server
from services.reporting.settings import ReportingSettings
from services.segment.server import create_server as create_segment_server
from tests.reporting.webhook_receiver import WebhookReceiver
from tests.support.sites import StaticSiteResolver, bearer

# The conversion follower reads goal events this often in tests (real time; which
# events it may read is decided by the frozen clock).
CONVERSION_INTERVAL_SECONDS = 0.1
# Unsubscribes after a push: every site that sent in the last day (with the frozen clock,
# every test's site) is read each pass.
UNSUBSCRIBE_INTERVAL_SECONDS = 0.5


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


# Module-scoped, like the webhook servers below: their background loops (feed followers,
# webhook pollers) would otherwise run, and take CPU, through every later test.
@pytest_asyncio.fixture(scope="module")
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
        unsubscribe_interval_seconds=UNSUBSCRIBE_INTERVAL_SECONDS,
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


# Webhooks: reporting servers of their own (no segment: no conversion goal is recorded),
# with a clock the tests move and a real receiver on 127.0.0.1.

WEBHOOK_INTERVAL_SECONDS = 0.05


@dataclass
class WebhooksUnderTest:
    stub: webhook_service_pb2_grpc.WebhookServiceStub
    internal_stub: reporting_internal_service_pb2_grpc.ReportingInternalServiceStub
    channel: grpc.aio.Channel
    resolver: StaticSiteResolver
    clock: FrozenClock
    settings: ReportingSettings

    def site(self) -> Site:
        site_id, api_key = self.resolver.new_site()
        internal = internal_metadata(self.settings.internal_token_value, site_id)
        return Site(site_id, api_key, internal)


@asynccontextmanager
async def webhooks_server(
    settings: ReportingSettings,
    *,
    resolver: StaticSiteResolver | None = None,
    clock: FrozenClock | None = None,
) -> AsyncIterator[WebhooksUnderTest]:
    resolver = resolver or StaticSiteResolver()
    clock = clock or FrozenClock()
    server = await create_server(
        "127.0.0.1:0",
        settings,
        clock=clock,
        site_resolver=resolver,
        webhook_interval_seconds=WEBHOOK_INTERVAL_SECONDS,
    )
    await server.start()
    channel = client_channel(server.address)
    try:
        yield WebhooksUnderTest(
            webhook_service_pb2_grpc.WebhookServiceStub(channel),
            reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(channel),
            channel,
            resolver,
            clock,
            settings,
        )
    finally:
        await channel.close()
        await server.stop()


def webhook_settings(settings_factory, **overrides: object) -> ReportingSettings:
    return ReportingSettings(**{**settings_factory().model_dump(), **overrides})


@pytest_asyncio.fixture(scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest_asyncio.fixture(scope="module")
async def webhooks(settings_factory) -> AsyncIterator[WebhooksUnderTest]:
    """Reporting that may send to 127.0.0.1 (CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)."""
    settings = webhook_settings(settings_factory, webhook_allow_private_addresses=True)
    async with webhooks_server(settings) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module")
async def guarded_webhooks(settings_factory) -> AsyncIterator[WebhooksUnderTest]:
    """Reporting as deployed: webhooks connect to public addresses only."""
    settings = webhook_settings(settings_factory, webhook_allow_private_addresses=False)
    async with webhooks_server(settings) as under_test:
        yield under_test
