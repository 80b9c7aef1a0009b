"""POST /v1/sites/{site_id}/subscriptions refuses SSRF endpoints with 400.

The gateway is unauthenticated: anybody can register an endpoint there that delivery
will later POST to. Against real campaign and segment servers configured as in
production (no CLARION_PUSH_TEST_ENDPOINTS), the gateway must relay segment's
INVALID_ARGUMENT as 400 with a message that says what is wrong.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.campaign.admin import create_site
from services.campaign.server import create_server as create_campaign_server
from services.gateway.server import GatewayServer, create_gateway
from services.kit.config import Settings
from services.segment.server import create_server as create_segment_server

SSRF_ENDPOINTS = [
    "https://127.0.0.1:5432/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5:6379/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::1]:8080/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://localhost:6379/",
    "http://fcm.googleapis.com/fcm/send/x",
    "https://user@fcm.googleapis.com/fcm/send/x",
    "https://fcm.googleapis.com:8443/fcm/send/x",
]


@dataclass
class ProductionGateway:
    settings: Settings
    gateway: GatewayServer
    http: aiohttp.ClientSession
    site_id: str

    async def subscribe(self, endpoint: str) -> tuple[int, dict]:
        url = f"{self.gateway.url}/v1/sites/{self.site_id}/subscriptions"
        async with self.http.post(url, json={"subscription": subscription(endpoint)}) as response:
            return response.status, await response.json()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subscription(endpoint: str) -> dict[str, object]:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def production(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[ProductionGateway]:
    settings = settings_factory(allow_insecure_endpoints=False)
    servers = {
        "campaign": await create_campaign_server("127.0.0.1:0", settings),
        "segment": await create_segment_server("127.0.0.1:0", settings),
    }
    for name, server in servers.items():
        setattr(settings, f"{name}_address", server.address)
    for server in servers.values():
        await server.start()
    gateway = await create_gateway("127.0.0.1:0", settings)
    await gateway.start()
    http = aiohttp.ClientSession()
    try:
        site = await create_site(settings, "SSRF test shop", "mailto:ops@shop.test")
        yield ProductionGateway(settings, gateway, http, site.site_id)
    finally:
        await http.close()
        await gateway.stop()
        for server in servers.values():
            await server.stop()


class TestSubscribeRefusesSsrfEndpoints:
    @pytest.mark.parametrize("endpoint", SSRF_ENDPOINTS)
    async def test_is_400_invalid_endpoint(
        self, production: ProductionGateway, endpoint: str
    ) -> None:
        status, body = await production.subscribe(endpoint)

        assert status == 400, body
        assert body["error"]["code"] == "INVALID_ENDPOINT"
        assert body["error"]["message"].startswith("push_subscription.endpoint ")

    async def test_the_message_names_the_known_push_services_and_the_host(
        self, production: ProductionGateway
    ) -> None:
        status, body = await production.subscribe("https://0x7f000001/")

        assert status == 400
        message = body["error"]["message"]
        assert "must be an https URL of a known push service (fcm.googleapis.com," in message
        assert "got host 0x7f000001, which is 127.0.0.1 (a loopback address)" in message

    async def test_a_real_push_service_endpoint_is_accepted(
        self, production: ProductionGateway
    ) -> None:
        status, body = await production.subscribe(
            "https://fcm.googleapis.com/fcm/send/dY3Xb7kIvtE:APA91bH" + os.urandom(8).hex()
        )

        assert status == 201, body
        assert body["created"] is True

    async def test_a_long_host_is_not_repeated_in_full(
        self, production: ProductionGateway
    ) -> None:
        host = ("a" * 60 + ".") * 4 + "example"  # 251 characters; DNS allows 253
        status, body = await production.subscribe(f"https://{host}/push")

        assert status == 400, body
        assert body["error"]["code"] == "INVALID_ENDPOINT"
        assert "got host aaaa" in body["error"]["message"]
        assert host[:101] not in body["error"]["message"]
