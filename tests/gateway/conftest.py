"""The gateway in front of real campaign (SiteService, SiteInternalService), segment,
reporting and delivery servers."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clarion.campaign.v1 import site_internal_service_pb2, site_internal_service_pb2_grpc
from clarion.reporting.v1 import reporting_internal_service_pb2_grpc, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2_grpc
from services.campaign.admin import create_site
from services.campaign.server import create_server as create_campaign_server
from services.delivery.server import create_server as create_delivery_server
from services.gateway.server import GatewayServer, create_gateway
from services.kit.auth import internal_metadata
from services.kit.config import Settings
from services.kit.grpcserver import client_channel
from services.reporting.server import create_server as create_reporting_server
from services.segment.server import create_server as create_segment_server


@dataclass
class Stack:
    settings: Settings
    gateway: GatewayServer
    http: aiohttp.ClientSession
    segment: segment_service_pb2_grpc.SegmentServiceStub
    reporting: reporting_service_pb2_grpc.ReportingServiceStub
    sites: site_internal_service_pb2_grpc.SiteInternalServiceStub
    # What delivery (outcomes) and the gateway (engagement) record with the internal token.
    reporting_internal: reporting_internal_service_pb2_grpc.ReportingInternalServiceStub

    def url(self, path: str) -> str:
        return f"{self.gateway.url}{path}"

    def internal(self, site_id: str) -> tuple[tuple[str, str], ...]:
        return internal_metadata(self.settings.internal_token_value, site_id)

    async def engagement_secret(self, site_id: str) -> bytes:
        """The secret delivery signs with: from GetSiteCredentials, as delivery gets it."""
        response = await self.sites.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(), metadata=self.internal(site_id)
        )
        return response.engagement_secret


@dataclass(frozen=True)
class GatewaySite:
    site_id: str
    api_key: str
    vapid_public_key: bytes
    engagement_secret: bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_subscription(endpoint_id: str) -> dict[str, object]:
    """What PushSubscription.toJSON() gives a page: a real P-256 key and a 16-byte secret."""
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "endpoint": f"https://push.example.test/send/{endpoint_id}",
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(settings_factory) -> AsyncIterator[Stack]:
    settings = settings_factory()
    servers = {
        # First, so it stops first (its workers call the others). The click redirect
        # asks it where a click leads.
        "delivery": await create_delivery_server("127.0.0.1:0", settings),
        "campaign": await create_campaign_server("127.0.0.1:0", settings),
        "segment": await create_segment_server("127.0.0.1:0", settings),
        "reporting": await create_reporting_server("127.0.0.1:0", settings),
    }
    for name, server in servers.items():
        setattr(settings, f"{name}_address", server.address)
    for server in servers.values():
        await server.start()
    gateway = await create_gateway("127.0.0.1:0", settings)
    await gateway.start()
    segment_channel = client_channel(settings.segment_address)
    reporting_channel = client_channel(settings.reporting_address)
    campaign_channel = client_channel(settings.campaign_address)
    http = aiohttp.ClientSession()
    try:
        yield Stack(
            settings,
            gateway,
            http,
            segment_service_pb2_grpc.SegmentServiceStub(segment_channel),
            reporting_service_pb2_grpc.ReportingServiceStub(reporting_channel),
            site_internal_service_pb2_grpc.SiteInternalServiceStub(campaign_channel),
            reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(reporting_channel),
        )
    finally:
        await http.close()
        await segment_channel.close()
        await reporting_channel.close()
        await campaign_channel.close()
        await gateway.stop()
        for server in servers.values():
            await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def site(stack: Stack) -> GatewaySite:
    created = await create_site(stack.settings, "Gateway test shop", "mailto:ops@shop.test")
    return GatewaySite(
        created.site_id,
        created.api_key,
        created.vapid_public_key,
        await stack.engagement_secret(created.site_id),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def other_site(stack: Stack) -> GatewaySite:
    created = await create_site(stack.settings, "Another shop", "mailto:ops@other.test")
    return GatewaySite(
        created.site_id,
        created.api_key,
        created.vapid_public_key,
        await stack.engagement_secret(created.site_id),
    )
