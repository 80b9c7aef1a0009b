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

Whatever a browser sends is checked against the declared models of `inputs` before
anything else is called, so no input reaches another service (or a database) that it
could break: malformed, oversized or hostile input is a 4xx naming the field, never a 5xx.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import structlog
from aiohttp import web
from cachetools import TTLCache
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import (
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
)
from clarion.segment.v1 import (
    profile_pb2,
    segment_internal_service_pb2,
    segment_internal_service_pb2_grpc,
    segment_service_pb2,
    segment_service_pb2_grpc,
)
from services.gateway import inputs, pages, safari
from services.gateway.clicks import ClickRedirects
from services.gateway.client_errors import ClientErrors
from services.gateway.errors import ApiError, bounded, quote, upstream
from services.gateway.registrations import RegistrationBatcher
from services.kit.auth import REQUEST_ID_HEADER
from services.kit.clock import Clock, SystemClock
from services.kit.errors import error_info
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.kit.tokens import (
    CLICK_PATH_PREFIX,
    MIN_SECRET_BYTES,
    unsubscribe_token,
    verify_engagement_token,
    verify_unsubscribe_token,
)

log = get_logger("clarion.gateway")

# A PushSubscription plus a few fields is well under 1 KiB; 16 KiB leaves room and no more.
MAX_BODY_BYTES = 16 * 1024
SITE_CACHE_SECONDS = 60.0
# Bounds each cache of site answers, so a flood of made-up site ids cannot grow memory
# (unknown sites are never cached; known ones past this many are evicted oldest first).
SITE_CACHE_SIZE = 10_000
UNSUBSCRIBE_TOKEN_HEADER = "X-Clarion-Unsubscribe-Token"
UNSUBSCRIBE_REASON = "user_unsubscribed"

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


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": bounded(message)}}, status=status)


def base64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- sites -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownSite:
    site_id: str
    vapid_public_key: bytes
    # The site's home page as its operator set it; "": none.
    home_url: str = ""


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
        inputs.require_site_id(site_id)
        site = self._sites.get(site_id)
        if site is None:
            with _site_not_found_as_404(site_id):
                response = await self._stub().GetSite(
                    site_service_pb2.GetSiteRequest(),
                    metadata=call_metadata(self._peers, site_id),
                    timeout=self._peers.timeout,
                )
            site = KnownSite(
                response.site.site_id, response.site.vapid_public_key, response.site.home_url
            )
            self._sites[site_id] = site
        return site

    async def engagement_secret(self, site_id: str) -> bytes:
        """The key of the site's engagement and unsubscribe tokens; 404 for no such site."""
        inputs.require_site_id(site_id)
        secret = self._secrets.get(site_id)
        if secret is None:
            with _site_not_found_as_404(site_id):
                response = await self._internal_stub().GetSiteCredentials(
                    site_internal_service_pb2.GetSiteCredentialsRequest(),
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

    def _internal_stub(self) -> site_internal_service_pb2_grpc.SiteInternalServiceStub:
        return site_internal_service_pb2_grpc.SiteInternalServiceStub(
            self._peers.channel("campaign")
        )


@contextmanager
def _site_not_found_as_404(site_id: str) -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "SITE_NOT_FOUND", f"there is no site {quote(site_id)}") from None
        raise


# --- handlers --------------------------------------------------------------------------

PEERS = web.AppKey("peers", Peers)
SITES = web.AppKey("sites", SiteDirectory)
REGISTRATIONS = web.AppKey("registrations", RegistrationBatcher)
CLICKS = web.AppKey("clicks", ClickRedirects)
CLIENT_ERRORS = web.AppKey("client_errors", ClientErrors)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def site_config(request: web.Request) -> web.Response:
    where = inputs.path(request, inputs.SitePath)
    site = await request.app[SITES].get(where.site_id)
    return web.json_response(
        {"site_id": site.site_id, "vapid_public_key": base64url_encode(site.vapid_public_key)}
    )


async def subscribe(request: web.Request) -> web.Response:
    site_id = inputs.site_path(request)
    body = await inputs.subscribe_body(request)
    message = segment_service_pb2.RegisterSubscriberRequest(
        push_subscription=common_pb2.PushSubscription(
            endpoint=body.endpoint, p256dh=body.p256dh, auth=body.auth
        ),
        browser=inputs.BROWSERS[body.browser] if body.browser else common_pb2.BROWSER_UNSPECIFIED,
        timezone=body.timezone,
        profile_id=body.profile_id,
    )
    secret = await request.app[SITES].engagement_secret(site_id)
    response = await request.app[REGISTRATIONS].register(site_id, message)
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


async def require_subscriber_proof(
    request: web.Request, site_id: str, subscriber_id: str
) -> None:
    """403 unless the request carries the unsubscribe_token the subscribe call answered
    for this subscriber on this site (proof the browser holds the subscription); 404 for
    no such site."""
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


async def unsubscribe(request: web.Request) -> web.Response:
    where = inputs.path(request, inputs.SubscriberPath)
    site_id, subscriber_id = where.site_id, where.subscriber_id
    await require_subscriber_proof(request, site_id, subscriber_id)
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


async def identify(request: web.Request) -> web.Response:
    where = inputs.path(request, inputs.SitePath)
    body = await inputs.body(request, inputs.IdentifyBody)
    site_id = where.site_id
    await require_subscriber_proof(request, site_id, body.subscriber_id)
    peers = request.app[PEERS]
    stub = segment_service_pb2_grpc.SegmentServiceStub(peers.channel("segment"))
    if body.properties:
        # Set first: segment applies an update whole or not at all, so properties it
        # refuses leave the subscriber unattached; set again with a retry, they are the same.
        await _set_profile_properties(stub, peers, site_id, body.profile_id, body.properties)
    response = await stub.Identify(
        segment_service_pb2.IdentifyRequest(
            subscriber_id=body.subscriber_id, profile_id=body.profile_id
        ),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    return web.json_response(
        {"subscriber_id": body.subscriber_id, "profile_id": response.profile.profile_id}
    )


_OPERATION_FIELD = re.compile(r"operations\[(\d+)\](?:\.set)?")


async def _set_profile_properties(
    stub: segment_service_pb2_grpc.SegmentServiceStub,
    peers: Peers,
    site_id: str,
    profile_id: str,
    properties: dict[str, object],
) -> None:
    """UpsertProfiles with a `set` of each property; a refusal is a 400 with segment's
    reason, naming the property (`properties.<name>`) rather than segment's operation."""
    names = list(properties)
    response = await stub.UpsertProfiles(
        segment_service_pb2.UpsertProfilesRequest(
            updates=[
                profile_pb2.ProfileUpdate(
                    profile_id=profile_id,
                    operations=[
                        profile_pb2.PropertyOperation(name=name, set=_property_value(value))
                        for name, value in properties.items()
                    ],
                )
            ]
        ),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    [result] = response.results
    if not result.ok:

        def named(found: re.Match[str]) -> str:
            index = int(found.group(1))
            return f"properties.{names[index]}" if index < len(names) else found.group()

        raise ApiError(
            400,
            result.reason or "INVALID_PROPERTIES",
            _OPERATION_FIELD.sub(named, result.message or f"{result.field} is not valid"),
        )


def _property_value(value: object) -> profile_pb2.PropertyValue:
    # bool before number: True is an int to Python. A string stays a string, whatever
    # it looks like (a time, a number): no guessing.
    if isinstance(value, bool):
        return profile_pb2.PropertyValue(bool_value=value)
    if isinstance(value, int | float):
        return profile_pb2.PropertyValue(number_value=float(value))
    if isinstance(value, str):
        return profile_pb2.PropertyValue(string_value=value)
    assert isinstance(value, list)
    return profile_pb2.PropertyValue(string_list_value=profile_pb2.StringList(values=value))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def track(request: web.Request) -> web.Response:
    where = inputs.path(request, inputs.SitePath)
    body = await inputs.body(request, inputs.TrackBody)
    site_id, subscriber_id = where.site_id, body.subscriber_id
    now = datetime.now(UTC)
    events = [
        profile_pb2.Event(
            event_id=event.event_id,
            name=event.name,
            subscriber_id=subscriber_id,
            occur_time=_timestamp(
                inputs.rfc3339_time(event.occur_time) if event.occur_time else now
            ),
            properties=[
                profile_pb2.Property(name=name, value=_property_value(value))
                for name, value in (event.properties or {}).items()
            ],
        )
        for event in body.events
    ]
    await require_subscriber_proof(request, site_id, subscriber_id)
    peers = request.app[PEERS]
    stub = segment_service_pb2_grpc.SegmentServiceStub(peers.channel("segment"))
    response = await stub.TrackEvents(
        segment_service_pb2.TrackEventsRequest(events=events),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    return web.json_response(
        {
            "results": [
                {
                    "index": index,
                    "ok": result.ok,
                    "duplicate": result.duplicate,
                    "code": result.reason,
                    "message": bounded(result.message),
                }
                for index, result in enumerate(response.results)
            ]
        }
    )


ENGAGEMENT_EVENT_NAMES = {
    common_pb2.ENGAGEMENT_KIND_VIEWED: "Notification Viewed",
    common_pb2.ENGAGEMENT_KIND_CLICKED: "Notification Clicked",
    common_pb2.ENGAGEMENT_KIND_CLOSED: "Notification Closed",
}
_EVENT_ID_LENGTH = 128


def engagement_event_id(kind: str, run_id: str, subscriber_id: str, button: str) -> str:
    """The same engagement always gets the same id, so segment stores a retry once.

    Readable when it fits segment's 128 characters; a digest of the same parts otherwise.
    """
    parts = [kind, run_id, subscriber_id] + ([button] if button else [])
    readable = "clarion:engagement:" + ":".join(parts)
    if len(readable) <= _EVENT_ID_LENGTH:
        return readable
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return f"clarion:engagement:{kind}:{digest}"


async def _record_engagement_in_segment(
    peers: Peers, site_id: str, kind: str, event: reporting_pb2.EngagementEvent
) -> None:
    """The engagement as the subscriber's segment event; a failure is logged, not raised
    (reporting has recorded it already, and the browser's request succeeds)."""
    properties = [
        profile_pb2.Property(
            name="campaign_id", value=profile_pb2.PropertyValue(string_value=event.campaign_id)
        ),
        profile_pb2.Property(
            name="run_id", value=profile_pb2.PropertyValue(string_value=event.run_id)
        ),
    ]
    if event.button:
        properties.append(
            profile_pb2.Property(
                name="button", value=profile_pb2.PropertyValue(string_value=event.button)
            )
        )
    stub = segment_internal_service_pb2_grpc.SegmentInternalServiceStub(peers.channel("segment"))
    try:
        response = await stub.TrackSystemEvents(
            segment_internal_service_pb2.TrackSystemEventsRequest(
                events=[
                    profile_pb2.Event(
                        event_id=engagement_event_id(
                            kind, event.run_id, event.subscriber_id, event.button
                        ),
                        name=ENGAGEMENT_EVENT_NAMES[event.kind],
                        subscriber_id=event.subscriber_id,
                        occur_time=_timestamp(datetime.now(UTC)),
                        properties=properties,
                    )
                ]
            ),
            metadata=call_metadata(peers, site_id),
            timeout=peers.timeout,
        )
    except grpc.aio.AioRpcError as error:
        log.warning(
            "engagement not recorded in segment", grpc_code=error.code().name, kind=kind
        )
        return
    refused = [result for result in response.results if not result.ok]
    if refused:
        log.warning(
            "engagement refused by segment", reason=refused[0].reason, kind=kind
        )


async def record_event(request: web.Request) -> web.Response:
    where = inputs.path(request, inputs.SitePath)
    body = await inputs.body(request, inputs.EventBody)
    event = reporting_pb2.EngagementEvent(
        kind=inputs.KINDS[body.kind],
        run_id=body.run_id,
        campaign_id=body.campaign_id,
        subscriber_id=body.subscriber_id,
        button=body.button or "",
    )
    site_id = where.site_id
    secret = await request.app[SITES].engagement_secret(site_id)
    if not body.engagement_token:
        raise ApiError(
            403,
            "ENGAGEMENT_TOKEN_REQUIRED",
            "engagement_token is required: send the one in the push message this event is about",
        )
    if not verify_engagement_token(
        secret, body.engagement_token, site_id, event.run_id, event.subscriber_id
    ):
        raise ApiError(
            403,
            "INVALID_ENGAGEMENT_TOKEN",
            "engagement_token does not prove that this subscriber was sent this run on this "
            "site; send run_id, subscriber_id and engagement_token unchanged from the push message",
        )
    recorded = await record_engagement(request.app[PEERS], site_id, event)
    return web.json_response({"recorded": recorded}, status=202)


async def record_engagement(
    peers: Peers, site_id: str, event: reporting_pb2.EngagementEvent
) -> bool:
    """Records a verified engagement in reporting (its gRPC error raised) and then in
    segment (a failure logged); whether reporting took it as new."""
    stub = reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
        peers.channel("reporting")
    )
    response = await stub.RecordEngagementEvents(
        reporting_internal_service_pb2.RecordEngagementEventsRequest(events=[event]),
        metadata=call_metadata(peers, site_id),
        timeout=peers.timeout,
    )
    kind = _KIND_NAMES[event.kind]
    await _record_engagement_in_segment(peers, site_id, kind, event)
    return response.recorded > 0


_KIND_NAMES = {value: name for name, value in inputs.KINDS.items()}


async def click_redirect(request: web.Request) -> web.Response:
    """`GET /c/{click_token}[?b=1|2]` (services/gateway/clicks.py)."""
    return await request.app[CLICKS].redirect(
        request.match_info["click_token"], request.query.get("b")
    )


async def client_error(request: web.Request) -> web.Response:
    """`POST /v1/sites/{site_id}/client-errors` (services/gateway/client_errors.py)."""
    return await request.app[CLIENT_ERRORS].record(request)


# --- middlewares ---------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: never bodies, query strings or headers (they may hold ids)."""
    structlog.contextvars.clear_contextvars()
    request_id = secrets.token_hex(16)  # as random as uuid4().hex, without the UUID object
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
            # A click link's path carries its engagement token: never logged.
            path=(
                CLICK_PATH_PREFIX + "…"
                if request.path.startswith(CLICK_PATH_PREFIX)
                else safari.logged_path(request.path)  # nor a Safari device token
            ),
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
    answer = upstream(code, reason, error.details() or "")
    if answer.status == 503:
        log.warning("upstream unavailable", grpc_code=code.name)
    elif answer.server_fault:
        # Clarion's fault (a refused internal token, an internal error): its details
        # stay in the log.
        log.error(
            "upstream call failed", grpc_code=code.name, reason=reason, details=error.details()
        )
    return error_response(answer.status, answer.code, answer.message)


def create_app(
    peers: Peers,
    *,
    site_cache_seconds: float = SITE_CACHE_SECONDS,
    site_cache_size: int = SITE_CACHE_SIZE,
    clock: Clock | None = None,
    public_url: str = "",
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[access_log, cors, json_errors]
    )
    app[PEERS] = peers
    app[SITES] = SiteDirectory(peers, site_cache_seconds, site_cache_size)
    app[REGISTRATIONS] = RegistrationBatcher(
        lambda: segment_service_pb2_grpc.SegmentServiceStub(peers.channel("segment")),
        peers.metadata,
        peers.timeout,
    )
    app[CLICKS] = ClickRedirects(
        peers,
        app[SITES],
        lambda site_id: call_metadata(peers, site_id),
        lambda site_id, event: record_engagement(peers, site_id, event),
        clock or SystemClock(),
    )

    async def close_clicks(app: web.Application) -> None:
        await app[CLICKS].retries.close()

    app[CLIENT_ERRORS] = ClientErrors(app[SITES].get)
    app.on_cleanup.append(close_clicks)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(CLICK_PATH_PREFIX + "{click_token}", click_redirect)
    app.router.add_get("/v1/sites/{site_id}/config", site_config)
    app.router.add_post("/v1/sites/{site_id}/subscriptions", subscribe)
    app.router.add_delete("/v1/sites/{site_id}/subscriptions/{subscriber_id}", unsubscribe)
    app.router.add_post("/v1/sites/{site_id}/events", record_event)
    app.router.add_post("/v1/sites/{site_id}/identify", identify)
    app.router.add_post("/v1/sites/{site_id}/track", track)
    app.router.add_post("/v1/sites/{site_id}/client-errors", client_error)
    # Report pages under /reports/ (services/gateway/pages, docs/services/gateway.md).
    pages.install(app, peers, lambda site_id: call_metadata(peers, site_id), clock=clock)
    # Apple's web service for legacy Safari (services/gateway/safari.py).
    safari.install(
        app, peers, app[SITES].engagement_secret, lambda site_id: call_metadata(peers, site_id),
        public_url=public_url,
    )  # fmt: skip
    return app
