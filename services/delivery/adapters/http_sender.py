"""HTTP to push services: one pooled aiohttp session per process, bounded concurrency.

Every endpoint passes the outbound URL policy (services.kit.egress) twice: its URL
before any connection, and the addresses it resolves to when the connection is made
(a name that rebinds to 127.0.0.1 after registration is refused there).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.abc import AbstractResolver

from services.delivery.domain.payload import endpoint_origin
from services.delivery.domain.rules import SENT_STATUSES, PushAnswer, Reason
from services.kit.egress import EgressPolicy, EgressRefused, refusal_in
from services.kit.logging import get_logger

log = get_logger(__name__)

BODY_EXCERPT_CHARS = 200
# Refusals are logged once per push-service origin and reason, so a campaign to many
# refused subscriptions does not flood the log.
_MAX_LOGGED_REFUSALS = 1000


def _excerpt(raw: bytes) -> str:
    """At most BODY_EXCERPT_CHARS printable characters of a push service's answer."""
    text = raw.decode("utf-8", "replace")[:BODY_EXCERPT_CHARS]
    return "".join(c if c.isprintable() else " " for c in text)


class PushSender:
    def __init__(
        self,
        concurrency: int,
        timeout_seconds: float,
        policy: EgressPolicy,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`policy` decides where pushes may go; `resolver` (tests) replaces the system
        DNS lookup that the policy's connect-time check wraps."""
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency)
        self._policy = policy
        self._inner_resolver = resolver
        self._logged_refusals: set[tuple[str, str]] = set()
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._resolver = self._policy.resolver(self._inner_resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._concurrency,
                    ttl_dns_cache=300,
                    # Names are resolved, and every address connected to is checked,
                    # against the policy at connect time.
                    resolver=self._resolver,
                    socket_factory=self._policy.socket_factory(),
                ),
                timeout=self._timeout,
                # Push services do not want cookies, and a redirect is not an answer.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Never through a proxy from the environment: the policy is about where
                # the connection goes.
                trust_env=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            # The connector closes only resolvers it made itself.
            await self._resolver.close()
            self._resolver = None

    async def post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> PushAnswer:
        if self._session is None:
            raise RuntimeError("PushSender.start() was not called")
        try:
            self._policy.check_url(endpoint)
        except EgressRefused as refused:
            return self._refused(endpoint, refused)
        async with self._slots:
            try:
                async with self._session.post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    excerpt = ""
                    if response.status not in SENT_STATUSES:
                        excerpt = _excerpt(await response.content.read(BODY_EXCERPT_CHARS * 4))
                    return PushAnswer(
                        status=response.status,
                        retry_after=response.headers.get("Retry-After"),
                        body_excerpt=excerpt,
                    )
            except TimeoutError:
                return PushAnswer(error=Reason.TIMEOUT)
            except aiohttp.ClientError as error:
                behind = refusal_in(error)
                if behind is not None:
                    return self._refused(endpoint, behind)
                return PushAnswer(error=Reason.CONNECTION_ERROR)

    def _refused(self, endpoint: str, refused: EgressRefused) -> PushAnswer:
        # The origin only: the path of an endpoint identifies one browser.
        key = (_safe_origin(endpoint), refused.reason)
        if key not in self._logged_refusals and len(self._logged_refusals) < _MAX_LOGGED_REFUSALS:
            self._logged_refusals.add(key)
            log.warning(
                "push endpoint refused by the outbound policy",
                push_service=key[0],
                refusal=refused.reason,
                detail=refused.detail,
            )
        return PushAnswer(error=Reason.ENDPOINT_REFUSED)


def _safe_origin(endpoint: str) -> str:
    try:
        return endpoint_origin(endpoint)
    except (ValueError, TypeError):
        return "<invalid URL>"
