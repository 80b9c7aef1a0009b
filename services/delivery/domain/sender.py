"""HTTP to push services: one pooled aiohttp session per process, bounded concurrency."""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from services.delivery.domain.rules import SENT_STATUSES, PushAnswer

BODY_EXCERPT_CHARS = 200


def endpoint_origin(endpoint: str) -> str:
    """The VAPID `aud` claim: scheme, host and (non-default) port of the push service."""
    return str(URL(endpoint).origin())


class PushSender:
    def __init__(self, concurrency: int, timeout_seconds: float) -> None:
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300),
                timeout=self._timeout,
                # Push services do not want cookies, and a redirect is not an answer.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> PushAnswer:
        if self._session is None:
            raise RuntimeError("PushSender.start() was not called")
        async with self._slots:
            try:
                async with self._session.post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    excerpt = ""
                    if response.status not in SENT_STATUSES:
                        excerpt = (await response.content.read(BODY_EXCERPT_CHARS * 4)).decode(
                            "utf-8", "replace"
                        )[:BODY_EXCERPT_CHARS]
                    return PushAnswer(
                        status=response.status,
                        retry_after=response.headers.get("Retry-After"),
                        body_excerpt=excerpt,
                    )
            except TimeoutError:
                return PushAnswer(error="timeout")
            except aiohttp.ClientError:
                return PushAnswer(error="connection_error")
