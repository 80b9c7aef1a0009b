"""Webhook POSTs over aiohttp, safe against server-side request forgery.

A site chooses the URL, so without care the sender would reach whatever reporting can:
loopback databases, the cloud metadata service, hosts on the private network. So:

- only http and https (checked when the endpoint is stored, and again here);
- every address actually connected to must be public (services.kit.egress): names are
  resolved by a resolver that refuses a lookup yielding any non-public address, and the
  socket factory refuses a non-public IP literal, at connect time, so a name that
  resolved to a public address when checked and to 127.0.0.1 a second later (DNS
  rebinding) is refused all the same;
- no redirect is followed (a 3xx is a failure), no proxy from the environment, no
  cookies;
- at most MAX_RESPONSE_BYTES of an answer are read, within CONNECT_TIMEOUT and
  TOTAL_TIMEOUT.

`allow_private_addresses` (CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES) turns the address
check off, for receivers on 127.0.0.1 in local tests only.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver

from services.kit.egress import EgressPolicy, EgressRefused, refusal_in
from services.kit.errors import InvalidArgument
from services.kit.logging import get_logger
from services.reporting.domain.webhooks import WebhookAnswer, checked_url

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
TOTAL_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
# Connections open at once, for all endpoints.
MAX_CONNECTIONS = 64
USER_AGENT = "Clarion-Webhooks/1"


class WebhookSender:
    def __init__(
        self,
        *,
        allow_private_addresses: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`resolver` (tests) replaces the system DNS lookup the address check wraps."""
        # Any host and port may be a webhook receiver; only the address is checked.
        self._policy = EgressPolicy(
            (), test_endpoints=allow_private_addresses, purpose="webhook receiver"
        )
        if allow_private_addresses:
            log.warning(
                "webhooks may connect to loopback, private and link-local addresses "
                "(CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES): no SSRF protection. Use this "
                "for local testing only, never in production"
            )
        self._inner_resolver = resolver
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._resolver = self._policy.resolver(self._inner_resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS,
                    ttl_dns_cache=60,
                    resolver=self._resolver,
                    socket_factory=self._policy.socket_factory(),
                ),
                timeout=aiohttp.ClientTimeout(
                    total=TOTAL_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"user-agent": USER_AGENT},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            # The connector closes only resolvers it made itself.
            await self._resolver.close()
            self._resolver = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookAnswer:
        if self._session is None:
            raise RuntimeError("WebhookSender.start() was not called")
        try:
            checked_url(url, "url")
        except InvalidArgument:
            return WebhookAnswer(None, "not an http(s) URL Clarion may send to")
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                await _read_bounded(response)
                status = response.status
                if 300 <= status < 400:
                    return WebhookAnswer(status, f"redirect not followed (HTTP {status})")
                if 200 <= status < 300:
                    return WebhookAnswer(status)
                return WebhookAnswer(status, f"HTTP {status}")
        except aiohttp.ConnectionTimeoutError:
            return WebhookAnswer(None, f"connect timeout after {CONNECT_TIMEOUT_SECONDS:g} s")
        except TimeoutError:
            return WebhookAnswer(None, f"timeout after {TOTAL_TIMEOUT_SECONDS:g} s")
        except (aiohttp.ClientError, OSError) as error:
            refused = refusal_in(error)
            if refused is not None:
                return WebhookAnswer(None, _refusal(refused))
            return WebhookAnswer(None, _connection_failure(error))


async def _read_bounded(response: aiohttp.ClientResponse) -> None:
    """Reads at most MAX_RESPONSE_BYTES of the answer (nothing of it is kept); a longer
    one is cut and its connection closed rather than reused."""
    read = 0
    while read < MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES - read)
        if not chunk:
            return
        read += len(chunk)
    if not response.content.at_eof():
        response.close()


def _refusal(refused: EgressRefused) -> str:
    return f"not connected: {refused.detail}"


def _connection_failure(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = error.os_error.strerror or type(error.os_error).__name__
        return f"connection failed: {reason}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "connection closed before an answer"
    if isinstance(error, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "invalid HTTP answer"
    return f"connection failed: {type(error).__name__}"
