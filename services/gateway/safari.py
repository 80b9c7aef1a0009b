"""Apple's web service for legacy Safari (macOS Safari 15 and earlier, website push over
APNs), at the gateway's root, which every push package names as its webServiceURL.

    POST   /v2/pushPackages/{websitePushID}                          the push package
    POST   /v{1,2}/devices/{deviceToken}/registrations/{websitePushID}  register a device
    DELETE /v{1,2}/devices/{deviceToken}/registrations/{websitePushID}  remove it
    POST   /v{1,2}/log                                                Safari's errors

A push package is a zip of website.json, icon.iconset/ (six PNGs), manifest.json (each
file's SHA-512, Apple's version 2) and `signature`: a detached CMS signature of
manifest.json made with the site's Website Push ID certificate (DER). It is built per
request from what campaign keeps (SiteInternalService.GetLegacySafariCredentials) and
never cached by anyone (Cache-Control: no-store).

website.json's authenticationToken is an HMAC over the site and the Website Push ID with
the site's engagement secret (services.kit.tokens): Safari sends it back on every
registration (`Authorization: ApplePushNotifications <token>`), and only a package this
gateway built for that site carries one that verifies. A registered device becomes a
segment subscriber of browser BROWSER_SAFARI_LEGACY whose target is its device token
and topic; removing it unsubscribes that subscriber. Both are idempotent.

Nothing Safari sends reaches a log whole: device tokens are cut from the access log's
path, the token is never logged, and /v1/log keeps a request's first MAX_LOG_LINES lines,
each cut to MAX_LOG_LINE_LENGTH characters with control characters replaced, under a
budget per client address; each line counts in clarion_gateway_safari_logs_total{kind}.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import grpc
from aiohttp import web
from annotated_types import MaxLen
from cachetools import TTLCache
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from pydantic import BeforeValidator

from clarion.campaign.v1 import (
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_pb2,
)
from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.gateway import inputs
from services.gateway.errors import ApiError, bounded, quote
from services.gateway.limits import TokenBuckets
from services.kit.auth import SITE_HEADER
from services.kit.logging import get_logger
from services.kit.metrics import GATEWAY_SAFARI_LOGS, GATEWAY_SAFARI_LOGS_DROPPED
from services.kit.peers import Peers
from services.kit.tokens import (
    safari_authentication_token,
    verify_safari_authentication_token,
)

log = get_logger("clarion.gateway")

AUTHORIZATION_SCHEME = "ApplePushNotifications"
UNSUBSCRIBE_REASON = "user_unsubscribed"
# Push ID -> site answers kept this long (only sites that exist are kept).
PUSH_ID_CACHE_SECONDS = 60.0
PUSH_ID_CACHE_SIZE = 10_000
# What one POST /v1/log may hold, and what of it is logged.
MAX_LOG_ENTRIES = 100
MAX_LOG_ENTRY_LENGTH = 4096
MAX_LOG_LINES = 10
MAX_LOG_LINE_LENGTH = 500
# Log lines per client address: LOG_BURST at once, then LOG_REFILL_PER_SECOND.
LOG_BURST = 60
LOG_REFILL_PER_SECOND = 1.0
# icon.iconset's files, by LegacySafariIcons' field names.
ICON_FILES: dict[str, str] = {
    "icon_16x16": "icon.iconset/icon_16x16.png",
    "icon_16x16_2x": "icon.iconset/icon_16x16@2x.png",
    "icon_32x32": "icon.iconset/icon_32x32.png",
    "icon_32x32_2x": "icon.iconset/icon_32x32@2x.png",
    "icon_128x128": "icon.iconset/icon_128x128.png",
    "icon_128x128_2x": "icon.iconset/icon_128x128@2x.png",
}
# What a Safari log line is about, by the first word found in it (lower case): a
# closed set, so it can be a metric label.
LOG_KINDS: tuple[tuple[str, str], ...] = (
    ("signature", "signature"),
    ("certificate", "signature"),
    ("manifest", "manifest"),
    ("icon", "icons"),
    ("website.json", "website_json"),
    ("json", "website_json"),
    ("authentication", "authentication"),
    ("allowed", "allowed_domains"),
    ("domain", "allowed_domains"),
    ("url", "web_service"),
    ("download", "web_service"),
    ("http", "web_service"),
)
OTHER_LOG_KIND = "other"

_WEBSITE_PUSH_ID = re.compile(r"web(\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?){2,}")
_MAX_WEBSITE_PUSH_ID = 128
_DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{64}")
_DEVICE_PATH = re.compile(r"(/v[12]/devices/)[^/]*(/.*)?")


def logged_path(path: str) -> str:
    """The path as the access log shows it: a device token is not logged."""
    return _DEVICE_PATH.sub(lambda found: found.group(1) + "…" + (found.group(2) or ""), path)


# --- inputs ----------------------------------------------------------------------------

SafariLogEntry = Annotated[
    str, BeforeValidator(inputs.strip_controls), MaxLen(MAX_LOG_ENTRY_LENGTH)
]


class SafariLogBody(inputs._Input):
    logs: Annotated[list[SafariLogEntry], MaxLen(MAX_LOG_ENTRIES)]


def website_push_id(request: web.Request) -> str:
    """The path's Website Push ID; 404 for one that cannot name a site."""
    push_id = request.match_info["website_push_id"]
    if len(push_id) > _MAX_WEBSITE_PUSH_ID or not _WEBSITE_PUSH_ID.fullmatch(push_id):
        raise _push_id_not_found(push_id)
    return push_id


def _push_id_not_found(push_id: str) -> ApiError:
    return ApiError(
        404,
        "WEBSITE_PUSH_ID_NOT_FOUND",
        f"no site has Website Push ID {quote(push_id, 128)}",
    )


# --- the push package ------------------------------------------------------------------


@dataclass(frozen=True)
class PushPackage:
    """What a push package is built from (GetLegacySafariCredentials with the package)."""

    website_json: dict[str, object]
    icons: dict[str, bytes]
    certificate: bytes
    certificate_chain: tuple[bytes, ...]
    private_key: bytes

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"PushPackage(websitePushID={self.website_json.get('websitePushID')!r})"


def build_push_package(package: PushPackage) -> bytes:
    """The zip Safari downloads: website.json, the icons, manifest.json (SHA-512 of each
    file, version 2) and the detached CMS signature of manifest.json (DER)."""
    files: dict[str, bytes] = {
        "website.json": json.dumps(package.website_json, ensure_ascii=False).encode("utf-8"),
        **{ICON_FILES[name]: data for name, data in package.icons.items()},
    }
    manifest = json.dumps(
        {
            path: {"hashType": "sha512", "hashValue": hashlib.sha512(data).hexdigest()}
            for path, data in files.items()
        }
    ).encode("utf-8")
    certificate = x509.load_der_x509_certificate(package.certificate)
    key = serialization.load_der_private_key(package.private_key, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the push-package key is neither RSA nor EC")
    builder = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(certificate, key, hashes.SHA256())
    )
    for issuer in package.certificate_chain:
        builder = builder.add_certificate(x509.load_der_x509_certificate(issuer))
    signature = builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in (*files.items(), ("manifest.json", manifest), ("signature", signature)):
            archive.writestr(path, data)
    return buffer.getvalue()


# --- the web service -------------------------------------------------------------------


class SafariWebService:
    """The handlers; `engagement_secret` and `metadata` are the gateway's (SiteDirectory's
    cached secret, call_metadata with this request's id)."""

    def __init__(
        self,
        peers: Peers,
        engagement_secret: Callable[[str], Awaitable[bytes]],
        metadata: Callable[[str], tuple[tuple[str, str], ...]],
        public_url: str = "",
        log_buckets: TokenBuckets | None = None,
    ) -> None:
        self._peers = peers
        self._engagement_secret = engagement_secret
        self._metadata = metadata
        self._public_url = public_url.rstrip("/")
        self._sites: TTLCache[str, str] = TTLCache(
            maxsize=PUSH_ID_CACHE_SIZE, ttl=PUSH_ID_CACHE_SECONDS
        )
        self._log_buckets = log_buckets or TokenBuckets(LOG_BURST, LOG_REFILL_PER_SECOND)

    def _sites_stub(self) -> site_internal_service_pb2_grpc.SiteInternalServiceStub:
        return site_internal_service_pb2_grpc.SiteInternalServiceStub(
            self._peers.channel("campaign")
        )

    async def site_of(self, push_id: str) -> str:
        """The site with this Website Push ID; 404 for none."""
        site_id = self._sites.get(push_id)
        if site_id is not None:
            return site_id
        try:
            response = await self._sites_stub().ResolveWebsitePushId(
                site_internal_service_pb2.ResolveWebsitePushIdRequest(website_push_id=push_id),
                # No site yet: the internal token and the request id only.
                metadata=tuple(item for item in self._metadata("") if item[0] != SITE_HEADER),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise _push_id_not_found(push_id) from None
            raise
        self._sites[push_id] = response.site_id
        return response.site_id

    def web_service_url(self, request: web.Request) -> str:
        if self._public_url:
            return self._public_url
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        scheme = forwarded if forwarded in ("http", "https") else request.scheme
        return f"{scheme}://{request.host}"

    async def push_package(self, request: web.Request) -> web.Response:
        """`POST /v2/pushPackages/{websitePushID}`: the site's push package (the body,
        Safari's userInfo, is not read)."""
        push_id = website_push_id(request)
        site_id = await self.site_of(push_id)
        try:
            credentials = await self._sites_stub().GetLegacySafariCredentials(
                site_internal_service_pb2.GetLegacySafariCredentialsRequest(
                    include_push_package=True
                ),
                metadata=self._metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # removed since it was resolved
                self._sites.pop(push_id, None)
                raise _push_id_not_found(push_id) from None
            raise
        if credentials.website_push_id != push_id:  # changed since it was resolved
            self._sites.pop(push_id, None)
            raise _push_id_not_found(push_id)
        secret = await self._engagement_secret(site_id)
        package = PushPackage(
            website_json={
                "websiteName": credentials.website_name,
                "websitePushID": push_id,
                "allowedDomains": list(credentials.allowed_domains),
                "urlFormatString": credentials.url_format_string,
                "authenticationToken": safari_authentication_token(secret, site_id, push_id),
                "webServiceURL": self.web_service_url(request),
            },
            icons=_icons(credentials.icons),
            certificate=credentials.certificate,
            certificate_chain=tuple(credentials.certificate_chain),
            private_key=credentials.certificate_private_key,
        )
        # Signing and zipping are CPU work: off the event loop.
        body = await asyncio.to_thread(build_push_package, package)
        log.info("safari push package built", site_id=site_id, website_push_id=push_id)
        return web.Response(
            body=body,
            content_type="application/zip",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": 'attachment; filename="pushPackage.zip"',
            },
        )

    async def _authorized_device(self, request: web.Request) -> tuple[str, str, str] | web.Response:
        """(site id, Website Push ID, device token) of a registration request whose token
        verifies; else the 401 to answer. 404 for an unknown Website Push ID, 400 for a
        device token that is no APNs device token."""
        push_id = website_push_id(request)
        site_id = await self.site_of(push_id)
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        secret = await self._engagement_secret(site_id)
        if scheme.lower() != AUTHORIZATION_SCHEME.lower() or not token:
            return _unauthorized(
                "AUTHENTICATION_TOKEN_REQUIRED",
                f"send 'Authorization: {AUTHORIZATION_SCHEME} <authenticationToken>' with "
                "the token of this site's push package",
            )
        if not verify_safari_authentication_token(secret, token, site_id, push_id):
            return _unauthorized(
                "INVALID_AUTHENTICATION_TOKEN",
                "the authentication token is not the one of this Website Push ID's push "
                "package; download the push package again",
            )
        device_token = request.match_info["device_token"]
        if not _DEVICE_TOKEN.fullmatch(device_token):
            raise ApiError(
                400,
                "INVALID_DEVICE_TOKEN",
                "the device token must be the 64 hex digits Safari handed out",
            )
        return site_id, push_id, device_token

    async def register_device(self, request: web.Request) -> web.Response:
        """`POST /v1/devices/{deviceToken}/registrations/{websitePushID}`."""
        authorized = await self._authorized_device(request)
        if isinstance(authorized, web.Response):
            return authorized
        site_id, push_id, device_token = authorized
        stub = segment_service_pb2_grpc.SegmentServiceStub(self._peers.channel("segment"))
        response = await stub.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                apns_device=common_pb2.ApnsDevice(device_token=device_token, topic=push_id),
                browser=common_pb2.BROWSER_SAFARI_LEGACY,
            ),
            metadata=self._metadata(site_id),
            timeout=self._peers.timeout,
        )
        log.info(
            "safari device registered" if response.created else "safari device registered again",
            site_id=site_id,
            subscriber_id=response.subscriber.subscriber_id,
        )
        return web.json_response(
            {"subscriber_id": response.subscriber.subscriber_id, "created": response.created}
        )

    async def remove_device(self, request: web.Request) -> web.Response:
        """`DELETE /v1/devices/{deviceToken}/registrations/{websitePushID}`: 200 also when
        the device was never registered (or already removed)."""
        authorized = await self._authorized_device(request)
        if isinstance(authorized, web.Response):
            return authorized
        site_id, push_id, device_token = authorized
        stub = segment_service_pb2_grpc.SegmentServiceStub(self._peers.channel("segment"))
        try:
            response = await stub.UnsubscribeSubscriber(
                segment_service_pb2.UnsubscribeSubscriberRequest(
                    apns_device=common_pb2.ApnsDevice(device_token=device_token, topic=push_id),
                    reason=UNSUBSCRIBE_REASON,
                ),
                metadata=self._metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return web.json_response({"state": "unsubscribed"})
            raise
        log.info(
            "safari device removed",
            site_id=site_id,
            subscriber_id=response.subscriber.subscriber_id,
        )
        return web.json_response(
            {"subscriber_id": response.subscriber.subscriber_id, "state": "unsubscribed"}
        )

    async def record_log(self, request: web.Request) -> web.Response:
        """`POST /v1/log` with `{"logs": [...]}`: each line logged ("safari log", bounded)
        and counted by kind; always 200 for a well-formed body."""
        body = await inputs.body(request, SafariLogBody)
        client = request.remote or "unknown"
        logged = 0
        for entry in body.logs:
            kind = log_kind(entry)
            GATEWAY_SAFARI_LOGS.labels(kind).inc()
            if logged >= MAX_LOG_LINES or not self._log_buckets.take(client):
                GATEWAY_SAFARI_LOGS_DROPPED.inc()
                continue
            logged += 1
            log.warning(
                "safari log", kind=kind, safari_message=bounded(entry[:MAX_LOG_LINE_LENGTH])
            )
        return web.json_response({"recorded": logged})


def log_kind(line: str) -> str:
    lowered = line.lower()
    for word, kind in LOG_KINDS:
        if word in lowered:
            return kind
    return OTHER_LOG_KIND


def _icons(icons: site_pb2.LegacySafariIcons) -> dict[str, bytes]:
    return {name: getattr(icons, name) for name in ICON_FILES}


def _unauthorized(code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}},
        status=401,
        headers={"WWW-Authenticate": AUTHORIZATION_SCHEME},
    )


SAFARI = web.AppKey("safari", SafariWebService)


def install(
    app: web.Application,
    peers: Peers,
    engagement_secret: Callable[[str], Awaitable[bytes]],
    metadata: Callable[[str], tuple[tuple[str, str], ...]],
    *,
    public_url: str = "",
) -> None:
    """Adds Safari's web service routes to the gateway's app."""
    service = app[SAFARI] = SafariWebService(peers, engagement_secret, metadata, public_url)
    app.router.add_post("/v2/pushPackages/{website_push_id}", service.push_package)
    for version in ("v1", "v2"):
        registration = f"/{version}/devices/{{device_token}}/registrations/{{website_push_id}}"
        app.router.add_post(registration, service.register_device)
        app.router.add_delete(registration, service.remove_device)
        app.router.add_post(f"/{version}/log", service.record_log)
