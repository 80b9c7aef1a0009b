"""Channels to the other services, opened lazily from the settings' addresses.

Lazy, so that servers can all bind to ephemeral ports first and learn each other's
addresses before the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.kit.auth import internal_metadata
from services.kit.config import Settings
from services.kit.grpcserver import client_channel


class Peers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(
        self, service: str, options: Sequence[tuple[str, str]] = ()
    ) -> grpc.aio.Channel:
        """The channel to `service`; `options` (e.g. a retry service config) apply when
        the first call opens it."""
        channel = self._channels.get(service)
        if channel is None:
            channel = client_channel(self.settings.address_for(service), options)
            self._channels[service] = channel
        return channel

    def metadata(self, site_id: str) -> tuple[tuple[str, str], ...]:
        """Metadata for a call on behalf of `site_id`, authenticated by the internal token."""
        return internal_metadata(self.settings.internal_token_value, site_id)

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout_seconds

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
