"""Channels to the other services, opened lazily from the settings' addresses, and what
a failed call to one means to an operator.

Lazy, so that servers can all bind to ephemeral ports first and learn each other's
addresses before the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.kit.auth import internal_metadata
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

# How a service answers a call whose internal token it does not share: UNAUTHENTICATED
# (taken for an unknown API key) or PERMISSION_DENIED (an internal-only method). Nothing
# else answers these to a call that carries the right token.
TOKEN_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


def token_rejected(error: grpc.RpcError) -> bool:
    """Whether the peer refused the call's internal token (a configuration error that
    asking again will not mend, nor make permanent: fixing the token does)."""
    code = getattr(error, "code", None)
    return callable(code) and code() in TOKEN_REFUSED


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

    def call_failed(self, service: str, error: grpc.RpcError) -> str:
        """What a failed call to `service` means, in one line: the internal token refused,
        the service out of reach (with the variable that gives its address), no answer in
        time, or else the status it answered ("CODE: details")."""
        code = error.code() if callable(getattr(error, "code", None)) else None
        details = (error.details() if callable(getattr(error, "details", None)) else "") or ""
        if code in TOKEN_REFUSED:
            return (
                f"internal token rejected by {service} ({code.name}): "  # type: ignore[union-attr]
                f"{self.settings.variable('internal_token')} must be the same for every service"
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            return (
                f"{service} unreachable at {self.settings.address_for(service)} "
                f"({details or 'no details'}); check {self.settings.variable(f'{service}_address')}"
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"{service} did not answer within {self.timeout:g} s"
        name = code.name if code is not None else type(error).__name__
        return f"{name}: {details or 'no details'}"

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout_seconds

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
