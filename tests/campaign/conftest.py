"""A real campaign server on an ephemeral port, on every test database backend.

Its peers (segment, delivery, reporting) point at a closed port, so runs it starts stay
PREPARING with their hand-off pending. Tests that need real peers start their own
servers with `start_service`, on a database of their own.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from clarion.campaign.v1 import (
    campaign_service_pb2_grpc,
    site_internal_service_pb2_grpc,
    site_service_pb2_grpc,
)
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import CreatedSite, create_site
from services.campaign.server import create_server
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import closed_port_address
from tests.support.sites import bearer


@pytest.fixture(scope="session")
def campaign_settings(settings_factory: Callable[..., Settings]) -> Settings:
    dead = closed_port_address()
    return settings_factory(
        segment_address=dead,
        delivery_address=dead,
        reporting_address=dead,
        rpc_timeout_seconds=5.0,
    )


@pytest.fixture(scope="session")
async def campaign_server(campaign_settings: Settings) -> AsyncIterator[ManagedServer]:
    server = await create_server("127.0.0.1:0", campaign_settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def channel(campaign_server: ManagedServer) -> AsyncIterator[grpc.aio.Channel]:
    async with client_channel(campaign_server.address) as opened:
        yield opened


@pytest.fixture(scope="session")
def sites_stub(channel: grpc.aio.Channel) -> site_service_pb2_grpc.SiteServiceStub:
    return site_service_pb2_grpc.SiteServiceStub(channel)


@pytest.fixture(scope="session")
def site_internal_stub(
    channel: grpc.aio.Channel,
) -> site_internal_service_pb2_grpc.SiteInternalServiceStub:
    return site_internal_service_pb2_grpc.SiteInternalServiceStub(channel)


@pytest.fixture(scope="session")
def campaigns_stub(channel: grpc.aio.Channel) -> campaign_service_pb2_grpc.CampaignServiceStub:
    return campaign_service_pb2_grpc.CampaignServiceStub(channel)


@pytest.fixture(scope="session")
def new_site(
    campaign_settings: Settings, campaign_server: ManagedServer
) -> Callable[..., Awaitable[CreatedSite]]:
    """Creates a real site (through the admin path) in the server's database."""

    async def make(name: str = "Test site", subject: str = "mailto:ops@example.com") -> CreatedSite:
        return await create_site(campaign_settings, name, subject)

    return make


@pytest.fixture
async def site(new_site: Callable[..., Awaitable[CreatedSite]]) -> CreatedSite:
    return await new_site()


@pytest.fixture
def auth(site: CreatedSite) -> tuple[tuple[str, str], ...]:
    return bearer(site.api_key)


@pytest.fixture(scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    """A push service the real delivery sends to (plain http on loopback)."""
    sim = PushServiceSimulator()
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


StartService = Callable[..., Awaitable[ManagedServer]]
_STOP_ORDER = ("delivery", "campaign", "segment", "reporting")


@pytest.fixture
async def start_service() -> AsyncIterator[StartService]:
    """Starts real Clarion servers for one test; those still running are stopped after.

    `await start_service("delivery", settings)` binds port 0 (or `address=`), publishes
    the address in `settings` (peers open their channels lazily from it) and starts it.
    """
    running: dict[ManagedServer, str] = {}

    async def start(
        name: str, settings: Settings, *, address: str = "127.0.0.1:0"
    ) -> ManagedServer:
        factory = importlib.import_module(f"services.{name}.server").create_server
        server: ManagedServer = await factory(address, settings)
        setattr(settings, f"{name}_address", server.address)
        running[server] = name
        await server.start()
        return server

    yield start
    # Delivery first, so in-flight sends finish while their peers are still up.
    for server, _ in sorted(running.items(), key=lambda item: _STOP_ORDER.index(item[1])):
        await server.stop()
