"""Channels to the other services, opened lazily from the settings' addresses, and what
a failed call to one means to an operator.

Lazy, so that servers can all bind to ephemeral ports first and learn each other's
addresses before the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.kit.auth import internal_metadata, request_time_left
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

# How a service answers a call whose internal token it does not share: UNAUTHENTICATED
# (taken for an unknown API key) or PERMISSION_DENIED (an internal-only method). Nothing
# else answers these to a call that carries the right token.
TOKEN_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

# Of the time the caller of the call being served has left, the share a peer call made
# meanwhile may use: the rest is for answering it, with what is known without the peer
# (a run's last stored progress) or with why the peer failed, before the caller gives up.
PEER_SHARE_OF_CALLER_DEADLINE = 0.8
# A call whose caller's deadline has (all but) passed still gets this long, so it fails
# as a peer call that did not answer in time, the way it would have anyway.
MIN_PEER_TIMEOUT_SECONDS = 0.05


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
            return (
                f"{service} did not answer in time ({self.settings.variable('rpc_timeout_seconds')}"
                f" is {self.settings.rpc_timeout_seconds:g} s, less when the caller's own"
                " deadline is nearer)"
            )
        name = code.name if code is not None else type(error).__name__
        return f"{name}: {details or 'no details'}"

    @property
    def timeout(self) -> float:
        """How long a call to a peer may take: the configured RPC timeout, cut short
        while serving a call whose caller's deadline is nearer (see within_deadline)."""
        return self.within_deadline(self.settings.rpc_timeout_seconds)

    @staticmethod
    def within_deadline(seconds: float) -> float:
        """`seconds`, or less while serving a call whose caller's deadline comes sooner:
        gRPC does not carry a deadline from an incoming call to the calls made for it,
        and a peer that accepts connections but does not answer (a process starting
        or stopped) would otherwise keep the caller waiting past its own deadline."""
        left = request_time_left()
        if left is None:
            return seconds
        return max(MIN_PEER_TIMEOUT_SECONDS, min(seconds, left * PEER_SHARE_OF_CALLER_DEADLINE))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
