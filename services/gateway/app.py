"""The browser-facing HTTP edge: JSON handlers, validation, CORS, error mapping.

Browsers (the SDK and its service worker, on customer origins) reach Clarion only here.
Each call is forwarded to a gRPC service with the internal token on behalf of the site
named in the URL, after checking that the site exists, so a made-up site id cannot
create data.

What a browser may do to data it did not create takes proof signed with the site's
engagement secret (`services.kit.tokens`): an engagement event carries the
`engagement_token` delivery put in that recipient's push, and an unsubscribe carries the
`unsubscribe_token` the subscribe call answered, in the `X-Clarion-Unsubscribe-Token`
header. Without it, knowing a site id and a subscriber id is not enough.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from aiohttp import web
from cachetools import TTLCache

from clarion.campaign.v1 import site_service_pb2, site_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.auth import REQUEST_ID_HEADER
from services.kit.errors import error_info
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.kit.tokens import (
    MIN_SECRET_BYTES,
    unsubscribe_token,
    verify_engagement_token,
    verify_unsubscribe_token,
)

log = get_logger("clarion.gateway")

T = TypeVar("T")

# A PushSubscription plus a few fields is well under 1 KiB; 16 KiB leaves room and no more.
MAX_BODY_BYTES = 16 * 1024
SITE_CACHE_SECONDS = 60.0
# Bounds each cache of site answers, so a flood of made-up site ids cannot grow memory
# (unknown sites are never cached; known ones past this many are evicted oldest first).
SITE_CACHE_SIZE = 10_000
UNSUBSCRIBE_TOKEN_HEADER = "X-Clarion-Unsubscribe-Token"
UNSUBSCRIBE_REASON = "user_unsubscribed"

_SITE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_BROWSERS = {
    "chrome": common_pb2.BROWSER_CHROME,
    "firefox": common_pb2.BROWSER_FIREFOX,
    "edge": common_pb2.BROWSER_EDGE,
    "opera": common_pb2.BROWSER_OPERA,
    "safari": common_pb2.BROWSER_SAFARI,
    "other": common_pb2.BROWSER_OTHER,
}
_KINDS = {
    "viewed": common_pb2.ENGAGEMENT_KIND_VIEWED,
    "clicked": common_pb2.ENGAGEMENT_KIND_CLICKED,
    "closed": common_pb2.ENGAGEMENT_KIND_CLOSED,
}
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": f"Content-Type, {UNSUBSCRIBE_TOKEN_HEADER}",
}
_PREFLIGHT_MAX_AGE = "86400"


# The request id of the HTTP request being handled, passed on to every gRPC call so one
# browser request can be followed through the services' logs.
_request_id: ContextVar[str] = ContextVar("gateway_request_id", default="")


def call_metadata(peers: Peers, site_id: str) -> tuple[tuple[str, str], ...]:
    """Internal-token metadata on behalf of `site_id`, carrying this request's id."""
    metadata = tuple(item for item in peers.metadata(site_id) if item[0] != REQUEST_ID_HEADER)
    request_id = _request_id.get()
    return (*metadata, (REQUEST_ID_HEADER, request_id)) if request_id else peers.metadata(site_id)


class ApiError(Exception):
    """An error the browser sees as {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def base64url_decode(value: str, field: str) -> bytes:
    """Decodes base64url with or without padding (browsers send it without)."""
    if not _BASE64URL.fullmatch(value):
        raise ApiError(
            400, "INVALID_BASE64URL", f"{field} must be base64url text (A-Z a-z 0-9 - _)"
        )
    unpadded = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise ApiError(400, "INVALID_BASE64URL", f"{field} is not valid base64url") from None


def base64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- request body reading -----------------------------------------------------------


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # raises 413 past the application's client_max_size
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_BODY", "the request body must be a JSON object")
    return body


def _object(container: dict[str, Any], key: str, field: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        raise ApiError(400, "MISSING_FIELD", f"{field} is required")
    if not isinstance(value, dict):
        raise ApiError(400, "INVALID_FIELD_TYPE", f"{field} must be a JSON object")
    return value


def _string(container: dict[str, Any], key: str, field: str, *, required: bool = True) -> str:
    value = container.get(key)
    if value is None:
        if required:
            raise ApiError(400, "MISSING_FIELD", f"{field} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "INVALID_FIELD_TYPE", f"{field} must be a string")
    if required and not value:
        raise ApiError(400, "MISSING_FIELD", f"{field} must not be empty")
    return value


def _choice(
    container: dict[str, Any], key: str, choices: Mapping[str, T], *, default: T | None = None
) -> T:
    """One of `choices` by name; without a default the field is required."""
    value = _string(container, key, key, required=default is None)
    if not value and default is not None:
        return default
    if value not in choices:
        raise ApiError(
            400,
            f"INVALID_{key.upper()}",
            f"{key} must be one of {', '.join(choices)}, got {value[:40]!r}",
        )
    return choices[value]


# --- sites -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownSite:
    site_id: str
    vapid_public_key: bytes


class SiteDirectory:
    """Looks sites up in the campaign service; positive answers are cached briefly.

    Both caches are bounded TTL caches: only sites that exist are cached, and at most
    `max_sites` of them, so neither made-up ids nor many real sites can grow memory.
    """

    def __init__(
        self,
        peers: Peers,
        ttl_seconds: float = SITE_CACHE_SECONDS,
        max_sites: int = SITE_CACHE_SIZE,
    ) -> None:
        self._peers = peers
        self._sites: TTLCache[str, KnownSite] = TTLCache(maxsize=max_sites, ttl=ttl_seconds)
        # Only the derived engagement secret is kept; the rest of the credentials
        # (the VAPID private key) is dropped as soon as the answer is read.
        self._secrets: TTLCache[str, bytes] = TTLCache(maxsize=max_sites, ttl=ttl_seconds)

    async def get(self, site_id: str) -> KnownSite:
        _require_site_id(site_id)
        site = self._sites.get(site_id)
        if site is None:
            with _site_not_found_as_404(site_id):
                response = await self._stub().GetSite(
                    site_service_pb2.GetSiteRequest(),
                    metadata=call_metadata(self._peers, site_id),
                    timeout=self._peers.timeout,
                )
            site = KnownSite(response.site.site_id, response.site.vapid_public_key)
            self._sites[site_id] = site
        return site

    async def engagement_secret(self, site_id: str) -> bytes:
        """The key of the site's engagement and unsubscribe tokens; 404 for no such site."""
        _require_site_id(site_id)
        secret = self._secrets.get(site_id)
        if secret is None:
            with _site_not_found_as_404(site_id):
                response = await self._stub().GetSiteCredentials(
                    site_service_pb2.GetSiteCredentialsRequest(),
                    metadata=call_metadata(self._peers, site_id),
                    timeout=self._peers.timeout,
                )
            secret = bytes(response.engagement_secret)
            if len(secret) < MIN_SECRET_BYTES:
                # A campaign service too old to derive it: no token could ever verify.
                log.error("campaign answered no engagement secret", secret_bytes=len(secret))
                raise ApiError(
                    502, "UPSTREAM_ERROR", "a Clarion service failed; see the gateway log"
                )
            self._secrets[site_id] = secret
        return secret

    def _stub(self) -> site_service_pb2_grpc.SiteServiceStub:
        return site_service_pb2_grpc.SiteServiceStub(self._peers.channel("campaign"))


def _require_site_id(site_id: str) -> None:
    # A malformed id cannot name a site (and must not reach gRPC metadata).
    if not _SITE_ID.fullmatch(site_id):
        raise ApiError(404, "SITE_NOT_FOUND", "there is no such site")


@contextmanager
def _site_not_found_as_404(site_id: str) -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "SITE_NOT_FOUND", f"there is no site {site_id!r}") from None
        raise


# --- handlers --------------------------------------------------------------------------

PEERS = web.AppKey("peers", Peers)
SITES = web.AppKey("sites", SiteDirectory)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def site_config(request: web.Request) -> web.Response:
    site = await request.app[SITES].get(request.match_info["site_id"])
    return web.json_response(
        {"site_id": site.site_id, "vapid_public_key": base64url_encode(site.vapid_public_key)}
    )


async def subscribe(request: web.Request) -> web.Response:
    body = await _json_object(request)
    subscription = _object(body, "subscription", "subscription")
    keys = _object(subscription, "keys", "subscription.keys")
    message = segment_service_pb2.RegisterSubscriberRequest(
        push_subscription=common_pb2.PushSubscription(
            endpoint=_string(subscription, "endpoint", "subscription.endpoint"),
            p256dh=base64url_decode(
                _string(keys, "p256dh", "subscription.keys.p256dh"), "subscription.keys.p256dh"
            ),
            auth=base64url_decode(
                _string(keys, "auth", "subscription.keys.auth"), "subscription.keys.auth"
            ),
        ),
        browser=_choice(body, "browser", _BROWSERS, default=common_pb2.BROWSER_UNSPECIFIED),
        timezone=_string(body, "timezone", "timezone", required=False),
        profile_id=_string(body, "profile_id", "profile_id", required=False),
    )
    site_id = request.match_info["site_id"]
    secret = await request.app[SITES].engagement_secret(site_id)
    peers = request.app[PEERS]
    stub = segment_service_pb2_grpc.SegmentServiceStub(peers.channel("segment"))
    response = await stub.RegisterSubscriber(
        message, metadata=call_metadata(peers, site_id), timeout=peers.timeout
    )
    subscriber_id = response.subscriber.subscriber_id
    return web.json_response(
        {
            "subscriber_id": subscriber_id,
            "created": response.created,
            # The browser keeps it to unsubscribe later: it proves it holds the subscription.
            "unsubscribe_token": unsubscribe_token(secret, site_id, subscriber_id),
        },
        status=201 if response.created else 200,
    )


async def unsubscribe(request: web.Request) -> web.Response:
    site_id = request.match_info["site_id"]
    subscriber_id = request.match_info["subscriber_id"]
    secret = await request.app[SITES].engagement_secret(site_id)
    token = request.headers.get(UNSUBSCRIBE_TOKEN_HEADER, "")
    if not token:
        raise ApiError(
            403,
            "UNSUBSCRIBE_TOKEN_REQUIRED",
            f"send the unsubscribe_token the subscribe call answered in the "
            f"{UNSUBSCRIBE_TOKEN_HEADER} header",
        )
    if not verify_unsubscribe_token(secret, token, site_id, subscriber_id):
        raise ApiError(
            403,
            "INVALID_UNSUBSCRIBE_TOKEN",
            f"the {UNSUBSCRIBE_TOKEN_HEADER} header is not this subscriber's unsubscribe_token "
            "on this site; send the one the subscribe call answered for it",
        )
    peers = request.app[PEERS]
    stub = segment_service_pb2_grpc.SegmentServiceStub(peers.channel("segment"))
    response = await stub.UnsubscribeSubscriber(
        segment_service_pb2.UnsubscribeSubscriberRequest(
            subscriber_id=subscriber_id, reason=UNSUBSCRIBE_REASON
        ),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    return web.json_response(
        {"subscriber_id": response.subscriber.subscriber_id, "state": "unsubscribed"}
    )


async def record_event(request: web.Request) -> web.Response:
    body = await _json_object(request)
    event = reporting_pb2.EngagementEvent(
        kind=_choice(body, "kind", _KINDS),
        run_id=_string(body, "run_id", "run_id"),
        campaign_id=_string(body, "campaign_id", "campaign_id"),
        subscriber_id=_string(body, "subscriber_id", "subscriber_id"),
        button=_string(body, "button", "button", required=False),
    )
    token = _string(body, "engagement_token", "engagement_token", required=False)
    site_id = request.match_info["site_id"]
    secret = await request.app[SITES].engagement_secret(site_id)
    if not token:
        raise ApiError(
            403,
            "ENGAGEMENT_TOKEN_REQUIRED",
            "engagement_token is required: send the one in the push message this event is about",
        )
    if not verify_engagement_token(secret, token, site_id, event.run_id, event.subscriber_id):
        raise ApiError(
            403,
            "INVALID_ENGAGEMENT_TOKEN",
            "engagement_token does not prove that this subscriber was sent this run on this "
            "site; send run_id, subscriber_id and engagement_token unchanged from the push message",
        )
    peers = request.app[PEERS]
    stub = reporting_service_pb2_grpc.ReportingServiceStub(peers.channel("reporting"))
    response = await stub.RecordEngagementEvents(
        reporting_service_pb2.RecordEngagementEventsRequest(events=[event]),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    return web.json_response({"recorded": response.recorded > 0}, status=202)


# --- middlewares ---------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: never bodies, query strings or headers (they may hold ids)."""
    structlog.contextvars.clear_contextvars()
    request_id = uuid.uuid4().hex
    _request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        log.info(
            "http request",
            http_method=request.method,
            path=request.path,
            status=status,
            site_id=request.match_info.get("site_id", ""),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The SDK runs on customer origins and sends no credentials, so "*" is enough.
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
    else:
        response = await handler(request)
    response.headers.update(_CORS_HEADERS)
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413, "PAYLOAD_TOO_LARGE", f"the request body must be at most {MAX_BODY_BYTES} bytes"
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = re.sub(r"\W+", "_", error.reason).upper().strip("_")
        return error_response(error.status, code, error.reason)
    except grpc.aio.AioRpcError as error:
        return _rpc_error_response(error)
    except Exception:
        log.exception("unhandled error")
        return error_response(500, "INTERNAL", "internal error; see the gateway log")


def _rpc_error_response(error: grpc.aio.AioRpcError) -> web.Response:
    code = error.code()
    info = error_info(error)
    reason = info.reason if info is not None else ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return error_response(
            400, reason or "INVALID_ARGUMENT", error.details() or "invalid request"
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return error_response(404, reason or "NOT_FOUND", error.details() or "not found")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS):
        return error_response(409, reason or code.name, error.details() or "conflict")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return error_response(
            429, reason or "RESOURCE_EXHAUSTED", "too many requests; retry later"
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("upstream unavailable", grpc_code=code.name)
        return error_response(
            503, "SERVICE_UNAVAILABLE", "a Clarion service is unavailable; retry shortly"
        )
    # Anything else (a refused internal token, an internal error) is Clarion's fault,
    # and its details stay in the log.
    log.error("upstream call failed", grpc_code=code.name, reason=reason, details=error.details())
    return error_response(502, "UPSTREAM_ERROR", "a Clarion service failed; see the gateway log")


def create_app(
    peers: Peers,
    *,
    site_cache_seconds: float = SITE_CACHE_SECONDS,
    site_cache_size: int = SITE_CACHE_SIZE,
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[access_log, cors, json_errors]
    )
    app[PEERS] = peers
    app[SITES] = SiteDirectory(peers, site_cache_seconds, site_cache_size)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/sites/{site_id}/config", site_config)
    app.router.add_post("/v1/sites/{site_id}/subscriptions", subscribe)
    app.router.add_delete("/v1/sites/{site_id}/subscriptions/{subscriber_id}", unsubscribe)
    app.router.add_post("/v1/sites/{site_id}/events", record_event)
    return app
