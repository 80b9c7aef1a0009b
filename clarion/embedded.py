"""The embedded default: every service and the gateway in one process, over gRPC on loopback.

This module is the composition root, the one place that knows all services; the
services themselves never import each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from services.kit.clock import Clock
from services.kit.config import SERVICE_NAMES, Settings
from services.kit.grpcserver import ManagedServer


def _factories() -> dict[str, Callable[..., Awaitable[ManagedServer]]]:
    from services.campaign.server import create_server as campaign
    from services.delivery.server import create_server as delivery
    from services.reporting.server import create_server as reporting
    from services.segment.server import create_server as segment

    return {"campaign": campaign, "segment": segment, "delivery": delivery, "reporting": reporting}


def ensure_internal_token(settings: Settings) -> None:
    """All services in one process can share a fresh token; a deployment sets its own."""
    if not settings.internal_token.get_secret_value():
        settings.internal_token = SecretStr(secrets.token_urlsafe(32))
        settings.__dict__.pop("internal_token_value", None)


@dataclass
class EmbeddedStack:
    settings: Settings
    servers: dict[str, ManagedServer] = field(default_factory=dict)
    gateway: Any = None

    @property
    def gateway_url(self) -> str:
        return str(self.gateway.url)

    def address(self, service: str) -> str:
        return self.servers[service].address

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        ephemeral_ports: bool = False,
        clock: Clock | None = None,
        with_gateway: bool = True,
    ) -> EmbeddedStack:
        """Binds every service (port 0 when `ephemeral_ports`), then starts them.

        Binding all before starting any lets each learn the others' real addresses:
        peers open their channels lazily from the shared settings.
        """
        from services.gateway.server import create_gateway

        ensure_internal_token(settings)
        stack = cls(settings)
        factories = _factories()
        try:
            for name in SERVICE_NAMES:
                address = "127.0.0.1:0" if ephemeral_ports else settings.listen_for(name)
                stack.servers[name] = await factories[name](address, settings, clock=clock)
            for name, server in stack.servers.items():
                setattr(settings, f"{name}_address", f"127.0.0.1:{server.port}")
            for server in stack.servers.values():
                await server.start()
            if with_gateway:
                address = "127.0.0.1:0" if ephemeral_ports else settings.gateway_listen
                stack.gateway = await create_gateway(address, settings)
                await stack.gateway.start()
        except BaseException:
            await stack.stop()
            raise
        return stack

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        # Delivery first, so in-flight sends finish while their peers are still up.
        for name in ("delivery", "campaign", "segment", "reporting"):
            server = self.servers.pop(name, None)
            if server is not None:
                await server.stop()
