"""The click redirect, `GET /c/{click_token}[?b=1|2]`: records the click and redirects.

The service worker opens this link instead of the notification's URL, so a click is
recorded server-side even when the worker could not report it. The click token
(`services.kit.tokens`, `click_path`) names the site, run and subscriber and carries the
push's engagement token, which the gateway verifies as it does for the events API; the
URL redirected to is never taken from the request: delivery's `ResolveClickTarget` makes
it from what it sent that recipient (UTM parameters included).

- A verified click on a push sent less than `CLICK_WINDOW` ago is recorded (reporting's
  click and segment's "Notification Clicked", with the events API's idempotent keys, so
  a click the worker also reports counts once) and redirected to its URL.
- A push never sent or sent longer ago, a token that does not verify, a button the push
  did not have: redirected to the site's home page, nothing recorded.
- The site's home page is the one its operator set (Site.home_url), else the origin of
  the push's body URL, else of the clicked button's, else the last one this gateway
  learned for the site; with none (a link naming no recipient), 404.
- A link that is not a click link, or names no site: 404 JSON.

A recorded click must not be lost when reporting is briefly away: the redirect is
answered anyway and the click is retried from an in-memory queue (`ClickRetries`) with
backoff for up to an hour; a click still unrecorded then, past the queue's bound, or at
shutdown is logged as an error with its ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import grpc
from aiohttp import web
from cachetools import TTLCache
from yarl import URL

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_pb2
from services.gateway.errors import ApiError
from services.kit.clock import Clock
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.kit.tokens import (
    MAX_CLICK_BUTTON,
    ClickToken,
    parse_click_token,
    verify_engagement_token,
)

log = get_logger("clarion.gateway")

# A click on a push sent longer ago than this is not recorded (and goes to the home page).
CLICK_WINDOW = timedelta(days=30)
# How long and how many clicks the gateway keeps retrying while reporting is away.
RETRY_FOR = timedelta(hours=1)
MAX_PENDING_CLICKS = 10_000
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# The home page learned per site, for when delivery cannot be asked.
HOME_CACHE_SECONDS = 24 * 3600.0
HOME_CACHE_SIZE = 10_000

_REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# Retrying these cannot help: the event itself was refused.
_REFUSED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)

Metadata = tuple[tuple[str, str], ...]
RecordEngagement = Callable[[str, reporting_pb2.EngagementEvent], Awaitable[object]]


class Secrets(Protocol):
    async def engagement_secret(self, site_id: str) -> bytes: ...

    async def get(self, site_id: str) -> Any: ...


@dataclass(frozen=True)
class _PendingClick:
    site_id: str
    event: reporting_pb2.EngagementEvent
    give_up_at: datetime


class ClickRetries:
    """Clicks reporting did not take, retried in the background in arrival order, with
    backoff while reporting stays away (all of them at once when it is back)."""

    def __init__(self, record: RecordEngagement, clock: Clock) -> None:
        self._record = record
        self._clock = clock
        self._pending: deque[_PendingClick] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, site_id: str, event: reporting_pb2.EngagementEvent) -> None:
        if len(self._pending) >= MAX_PENDING_CLICKS:
            _lost("click not recorded: the retry queue is full", site_id, event)
            return
        self._pending.append(_PendingClick(site_id, event, self._clock.now() + RETRY_FOR))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while self._pending:
            await asyncio.sleep(delay)
            while self._pending:
                item = self._pending[0]
                try:
                    await self._record(item.site_id, item.event)
                except grpc.aio.AioRpcError as error:
                    if error.code() in _REFUSED:
                        self._pending.popleft()
                        _lost("click refused by reporting", item.site_id, item.event)
                        continue
                    now = self._clock.now()
                    while self._pending and self._pending[0].give_up_at <= now:
                        gone = self._pending.popleft()
                        _lost(
                            "click not recorded: reporting stayed away",
                            gone.site_id,
                            gone.event,
                            grpc_code=error.code().name,
                        )
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    break
                else:
                    self._pending.popleft()
                    delay = RETRY_FIRST_SECONDS
                    log.info("click recorded on retry", site_id=item.site_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._pending:
            _lost("click not recorded: the gateway stopped", item.site_id, item.event)
        self._pending.clear()


def _lost(message: str, site_id: str, event: reporting_pb2.EngagementEvent, **more: str) -> None:
    log.error(
        message,
        site_id=site_id,
        run_id=event.run_id,
        subscriber_id=event.subscriber_id,
        button=event.button,
        **more,
    )


@dataclass(frozen=True)
class _Resolved:
    """Delivery's answer: the target, None for no such recipient; `reachable` False when
    delivery could not be asked."""

    target: delivery_service_pb2.ResolveClickTargetResponse | None
    reachable: bool = True


class ClickRedirects:
    def __init__(
        self,
        peers: Peers,
        secrets: Secrets,
        metadata: Callable[[str], Metadata],
        record: RecordEngagement,
        clock: Clock,
    ) -> None:
        self._peers = peers
        self._secrets = secrets
        self._metadata = metadata
        self._record = record
        self._clock = clock
        self.retries = ClickRetries(record, clock)
        self._homes: TTLCache[str, str] = TTLCache(maxsize=HOME_CACHE_SIZE, ttl=HOME_CACHE_SECONDS)

    async def redirect(self, token_text: str, button_text: str | None) -> web.Response:
        click = parse_click_token(token_text)
        if click is None:
            raise ApiError(
                404,
                "CLICK_LINK_NOT_FOUND",
                "this is not a Clarion click link; open the notification's link again",
            )
        # 404 SITE_NOT_FOUND for no such site: there is no home page to go to.
        secret = await self._secret(click.site_id)
        button = _button(button_text)
        verified = (
            secret is not None
            and button is not None
            and verify_engagement_token(
                secret, click.engagement_token, click.site_id, click.run_id, click.subscriber_id
            )
        )
        resolved = await self._resolve(click, button or 0)
        target = resolved.target
        if verified and target is not None and self._counts(click, button or 0, target):
            await self._record_click(click, target)
            if _web_url(target.url):
                return _redirect(target.url)
        home = await self._home(click, button or 0, resolved)
        if home is None:
            if not resolved.reachable:
                raise ApiError(
                    503,
                    "SERVICE_UNAVAILABLE",
                    "a Clarion service is unavailable; open the notification's link again shortly",
                )
            raise ApiError(
                404,
                "CLICK_TARGET_NOT_FOUND",
                "this click link names no notification with a page to go to",
            )
        return _redirect(home)

    def _counts(
        self,
        click: ClickToken,
        button: int,
        target: delivery_service_pb2.ResolveClickTargetResponse,
    ) -> bool:
        """Whether the click is recorded: a push sent within CLICK_WINDOW, on a button it had."""
        if not target.sent or not target.HasField("sent_time"):
            log.info("click on a push never sent", site_id=click.site_id, run_id=click.run_id)
            return False
        sent_time = target.sent_time.ToDatetime(tzinfo=self._clock.now().tzinfo)
        if self._clock.now() - sent_time > CLICK_WINDOW:
            log.info("click on an expired push", site_id=click.site_id, run_id=click.run_id)
            return False
        if button and not target.action:
            log.info("click on a button the push did not have", site_id=click.site_id)
            return False
        return True

    async def _secret(self, site_id: str) -> bytes | None:
        try:
            return await self._secrets.engagement_secret(site_id)
        except grpc.aio.AioRpcError as error:
            log.warning("click not verified: campaign failed", grpc_code=error.code().name)
            return None

    async def _resolve(self, click: ClickToken, button: int) -> _Resolved:
        stub = delivery_service_pb2_grpc.DeliveryServiceStub(self._peers.channel("delivery"))
        try:
            target = await stub.ResolveClickTarget(
                delivery_service_pb2.ResolveClickTargetRequest(
                    run_id=click.run_id, subscriber_id=click.subscriber_id, button=button
                ),
                metadata=self._metadata(click.site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return _Resolved(None)
            log.warning(
                "click target not resolved: delivery failed",
                grpc_code=error.code().name,
                site_id=click.site_id,
            )
            return _Resolved(None, reachable=False)
        return _Resolved(target)

    async def _home(self, click: ClickToken, button: int, resolved: _Resolved) -> str | None:
        """The site's home page as its operator set it, else the origin of the push's body
        URL, else of the clicked button's, else the last home learned for the site; None
        when there is none."""
        try:
            site = await self._secrets.get(click.site_id)
        except (ApiError, grpc.aio.AioRpcError):
            site = None
        if site is not None and site.home_url:
            return str(site.home_url)
        body = resolved if button == 0 else await self._resolve(click, 0)
        for target in (body.target, resolved.target):
            if target is not None and _web_url(target.url):
                home = str(URL(target.url).origin()) + "/"
                self._homes[click.site_id] = home
                return home
        return self._homes.get(click.site_id)

    async def _record_click(
        self, click: ClickToken, target: delivery_service_pb2.ResolveClickTargetResponse
    ) -> None:
        event = reporting_pb2.EngagementEvent(
            kind=common_pb2.ENGAGEMENT_KIND_CLICKED,
            run_id=click.run_id,
            campaign_id=target.campaign_id,
            subscriber_id=click.subscriber_id,
            button=target.action,
        )
        try:
            await self._record(click.site_id, event)
        except grpc.aio.AioRpcError as error:
            if error.code() in _REFUSED:
                _lost(
                    "click refused by reporting", click.site_id, event, grpc_code=error.code().name
                )
                return
            log.warning(
                "click not recorded yet: reporting failed; retrying in the background",
                grpc_code=error.code().name,
                site_id=click.site_id,
                run_id=click.run_id,
            )
            self.retries.add(click.site_id, event)


def _button(text: str | None) -> int | None:
    """The `b` query parameter: 0 when absent; None when it names no button."""
    if text is None:
        return 0
    if len(text) == 1 and text.isdigit() and int(text) <= MAX_CLICK_BUTTON:
        return int(text)
    return None


def _web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: nothing else is redirected to."""
    if not url:
        return False
    try:
        parsed = URL(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host) and parsed.is_absolute()


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, **_REDIRECT_HEADERS})


__all__ = ["CLICK_WINDOW", "ClickRedirects", "ClickRetries"]
