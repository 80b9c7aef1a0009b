"""One real segment server per test module (and backend), on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer
from services.segment.server import create_server
from tests.segment.helpers import Site, new_site
from tests.support.sites import StaticSiteResolver


@pytest.fixture(scope="module")
def resolver() -> StaticSiteResolver:
    return StaticSiteResolver()


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="module")
def settings(settings_factory) -> Settings:  # type: ignore[no-untyped-def]
    return settings_factory()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def segment_server(
    settings: Settings, clock: FrozenClock, resolver: StaticSiteResolver
) -> AsyncIterator[ManagedServer]:
    server = await create_server("127.0.0.1:0", settings, clock=clock, site_resolver=resolver)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def channel(segment_server: ManagedServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(segment_server.address) as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> pb_grpc.SegmentServiceStub:
    return pb_grpc.SegmentServiceStub(channel)


@pytest.fixture(scope="module")
def internal_stub(channel: grpc.aio.Channel) -> internal_pb_grpc.SegmentInternalServiceStub:
    """The same server's SegmentInternalService (delivery's calls, internal token only)."""
    return internal_pb_grpc.SegmentInternalServiceStub(channel)


@pytest.fixture
def site(resolver: StaticSiteResolver) -> Site:
    """A fresh site per test keeps tests apart on the shared database."""
    return new_site(resolver)


@pytest.fixture
def other_site(resolver: StaticSiteResolver) -> Site:
    return new_site(resolver)
