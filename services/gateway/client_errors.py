"""`POST /v1/sites/{site_id}/client-errors`: what went wrong in a browser.

The SDK and its service worker report their own failures here (a push they could not
read, a notification the browser refused to show, a report or a subscribe that failed),
so an operator sees them without the site's users opening a console. Each accepted
report is one structured log line ("client error") and one count of
`clarion_gateway_client_errors_total{kind}`; nothing is stored.

Anyone can post one (the SDK has no secret), so nothing in a report is trusted: the
kind is a closed set (a metric label), the message is bounded (inputs.py) with its
control characters replaced, the ids are only logged. A site's reports pass a token
bucket (BURST at once, REFILL_PER_SECOND after): a broken page on a busy site cannot
flood the log. Past it the answer is 429, counted by
`clarion_gateway_client_errors_rate_limited_total{kind}`. The buckets live in a bounded
LRU map: at most MAX_SITES sites are tracked, the least recently seen forgotten first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.gateway import inputs
from services.gateway.errors import ApiError
from services.gateway.limits import TokenBuckets
from services.kit.logging import get_logger
from services.kit.metrics import GATEWAY_CLIENT_ERRORS, GATEWAY_CLIENT_ERRORS_RATE_LIMITED

log = get_logger("clarion.gateway")

# A site may report this many errors at once, then REFILL_PER_SECOND (3,600 an hour).
BURST = 60
REFILL_PER_SECOND = 1.0
MAX_SITES = 10_000


class ClientErrors:
    """The handler of client-error reports; `site_exists` raises the 404 of an unknown
    site (the gateway's SiteDirectory.get)."""

    def __init__(
        self,
        site_exists: Callable[[str], Awaitable[object]],
        buckets: TokenBuckets | None = None,
    ) -> None:
        self._site_exists = site_exists
        self._buckets = buckets or TokenBuckets(BURST, REFILL_PER_SECOND, MAX_SITES)

    async def record(self, request: web.Request) -> web.Response:
        where = inputs.path(request, inputs.SitePath)
        body = await inputs.body(request, inputs.ClientErrorBody)
        site_id = where.site_id
        await self._site_exists(site_id)
        if not self._buckets.take(site_id):
            GATEWAY_CLIENT_ERRORS_RATE_LIMITED.labels(body.kind).inc()
            raise ApiError(
                429,
                "TOO_MANY_CLIENT_ERRORS",
                f"this site reported more than {BURST} errors at once; its reports are "
                f"taken again at {REFILL_PER_SECOND:g} a second",
            )
        GATEWAY_CLIENT_ERRORS.labels(body.kind).inc()
        log.warning(
            "client error",
            site_id=site_id,
            kind=body.kind,
            # Bounded and with control characters replaced (inputs.ClientErrorMessage).
            client_message=body.message,
            sdk_version=body.sdk_version,
            subscriber_id=body.subscriber_id or "",
            run_id=body.run_id or "",
        )
        return web.json_response({"recorded": True}, status=202)
