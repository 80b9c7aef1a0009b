"""Resolving API keys through the campaign service's SiteInternalService, for the other
services.

A client of one contract (clarion.campaign.v1.SiteInternalService), kept out of the kit
so the kit knows no service's contract; segment, delivery and reporting use it. Answers
are cached (services.kit.auth.CachingSiteResolver, 30 s): a key replaced by
SiteService.RotateApiKey is still accepted here until its cache entry expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from clarion.campaign.v1 import site_internal_service_pb2, site_internal_service_pb2_grpc
from services.kit.auth import REQUEST_ID_HEADER, CachingSiteResolver, current_request_id
from services.kit.errors import Unavailable
from services.kit.logging import OncePer, get_logger
from services.kit.peers import Peers, token_rejected

log = get_logger("clarion.siteclient")

# A failing campaign is logged once a minute, not on every call it fails.
FAILURE_LOG_SECONDS = 60.0


def remote_site_resolver(
    peers: Peers, *, timer: Callable[[], float] = time.monotonic
) -> CachingSiteResolver:
    """`timer` is the cache's clock (seconds; tests pass one they move)."""
    failure_logged = OncePer(FAILURE_LOG_SECONDS, max_keys=8)

    async def resolve(api_key: str) -> str | None:
        stub = site_internal_service_pb2_grpc.SiteInternalServiceStub(peers.channel("campaign"))
        try:
            response = await stub.ResolveApiKey(
                site_internal_service_pb2.ResolveApiKeyRequest(api_key=api_key),
                metadata=(
                    ("authorization", f"Bearer {peers.settings.internal_token_value}"),
                    (REQUEST_ID_HEADER, current_request_id()),
                ),
                timeout=peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            what = peers.call_failed("campaign", error)
            if failure_logged(error.code()):
                log.error(f"cannot check API keys: {what}", call="campaign.ResolveApiKey")
            if token_rejected(error):
                raise Unavailable(
                    "AUTH_UNAVAILABLE",
                    "cannot check the API key: campaign rejected this service's internal token "
                    "(a configuration error; see the service log)",
                ) from None
            raise Unavailable(
                "AUTH_UNAVAILABLE", "cannot check the API key: the campaign service is unreachable"
            ) from None
        return response.site_id or None

    return CachingSiteResolver(resolve, timer=timer)
