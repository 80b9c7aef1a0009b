"""A real reporting server per database backend, on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from clarion.reporting.v1 import reporting_internal_service_pb2_grpc, reporting_service_pb2_grpc
from services.kit.auth import internal_metadata
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import client_channel
from services.reporting.server import create_server
from tests.support.sites import StaticSiteResolver, bearer


@dataclass
class ReportingUnderTest:
    stub: reporting_service_pb2_grpc.ReportingServiceStub
    # The same server's ReportingInternalService (delivery's and the gateway's calls).
    internal_stub: reporting_internal_service_pb2_grpc.ReportingInternalServiceStub
    channel: grpc.aio.Channel
    resolver: StaticSiteResolver
    clock: FrozenClock
    settings: Settings


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
    settings = settings_factory()
    resolver = StaticSiteResolver()
    clock = FrozenClock()
    server = await create_server("127.0.0.1:0", settings, clock=clock, site_resolver=resolver)
    await server.start()
    channel = client_channel(server.address)
    try:
        yield ReportingUnderTest(
            reporting_service_pb2_grpc.ReportingServiceStub(channel),
            reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(channel),
            channel,
            resolver,
            clock,
            settings,
        )
    finally:
        await channel.close()
        await server.stop()


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
