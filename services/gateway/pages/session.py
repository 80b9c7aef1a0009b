"""Who is reading: the site API key in an HttpOnly cookie, re-resolved on every page, and
the double-submit CSRF token of every POST form.

The key itself is the session: nothing is stored server-side but a short cache of what
campaign answered for it (keyed by the key's SHA-256, never the key), so a key replaced
by `RotateApiKey` ends every session signed in with it once that entry expires.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from aiohttp import web
from cachetools import TTLCache

from clarion.campaign.v1 import (
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)
from services.kit.auth import SITE_HEADER, CachingSiteResolver
from services.kit.clock import Clock
from services.kit.peers import Peers

SESSION_COOKIE = "clarion_reports"
CSRF_COOKIE = "clarion_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/reports"
SESSION_SECONDS = 8 * 3600
# How long an answer of ResolveApiKey is trusted: a rotated key works this much longer.
KEY_CACHE_SECONDS = 30.0
KEY_CACHE_SIZE = 10_000
# ResolveApiKeyRequest.api_key's declared limit; keys Clarion issues are `ck_` + 43
# base64url characters, so anything else is refused without asking.
MAX_KEY_LENGTH = 256
_KEY_FORM = re.compile(r"[A-Za-z0-9_\-.~]{1,%d}" % MAX_KEY_LENGTH)
_CSRF_FORM = re.compile(r"[A-Za-z0-9_\-]{43}")

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SiteSession:
    site_id: str
    site_name: str


class SiteSessions:
    """Resolves an API key to its site (and the site's name) through campaign's
    `SiteInternalService.ResolveApiKey` and `SiteService.GetSite`, with the internal
    token. Keys go through the kit's CachingSiteResolver (the cache the gRPC services
    use): known keys are trusted for `ttl_seconds` by the clock's time, unknown ones
    briefly; site names are cached as long."""

    def __init__(
        self,
        peers: Peers,
        metadata: Callable[[str], Metadata],
        clock: Clock,
        ttl_seconds: float = KEY_CACHE_SECONDS,
        max_keys: int = KEY_CACHE_SIZE,
    ) -> None:
        self._peers = peers
        self._metadata = metadata

        def timer() -> float:
            return clock.now().timestamp()

        self._sites = CachingSiteResolver(
            self._site_of_key, ttl_seconds=ttl_seconds, max_keys=max_keys, timer=timer
        )
        self._names: TTLCache[str, str] = TTLCache(maxsize=max_keys, ttl=ttl_seconds, timer=timer)

    async def _site_of_key(self, api_key: str) -> str | None:
        internal = site_internal_service_pb2_grpc.SiteInternalServiceStub(
            self._peers.channel("campaign")
        )
        try:
            resolved = await internal.ResolveApiKey(
                site_internal_service_pb2.ResolveApiKeyRequest(api_key=api_key),
                # No site yet: the internal token and the request id only.
                metadata=tuple(item for item in self._metadata("") if item[0] != SITE_HEADER),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        return resolved.site_id or None

    async def resolve(self, api_key: str) -> SiteSession | None:
        """The key's site; None for a key that names none (malformed, unknown, rotated).
        A campaign service that cannot answer raises its gRPC error."""
        if not _KEY_FORM.fullmatch(api_key):
            return None
        site_id = await self._sites.resolve(api_key)
        if site_id is None:
            return None
        name = self._names.get(site_id)
        if name is None:
            site = await site_service_pb2_grpc.SiteServiceStub(
                self._peers.channel("campaign")
            ).GetSite(
                site_service_pb2.GetSiteRequest(),
                metadata=self._metadata(site_id),
                timeout=self._peers.timeout,
            )
            name = self._names[site_id] = site.site.name or site_id
        return SiteSession(site_id, name)


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over https (directly, or through a proxy that says
    so in X-Forwarded-Proto)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def own_origin(request: web.Request) -> str:
    return f"{'https' if is_https(request) else 'http'}://{request.host}"


def set_session(response: web.StreamResponse, request: web.Request, api_key: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        api_key,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_session(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


_CSRF_KEY = web.RequestKey("clarion_reports_csrf", str)


def csrf_token(request: web.Request) -> str:
    """This browser's CSRF token: its cookie's, or a new one (set by `remember_csrf`)."""
    token = request.get(_CSRF_KEY)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE, "")
        if not _CSRF_FORM.fullmatch(token):
            token = secrets.token_urlsafe(32)
        request[_CSRF_KEY] = token
    return str(token)


def remember_csrf(response: web.StreamResponse, request: web.Request) -> None:
    """Sets the CSRF cookie when the page was rendered with a token the browser lacks."""
    token = request.get(_CSRF_KEY)
    if token is not None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=is_https(request),
        )


def csrf_refusal(request: web.Request, form_token: str) -> str:
    """Why a POST is refused as possibly forged ("" when it is not): an Origin other than
    ours, a browser that says the request came from another site (Sec-Fetch-Site), or a
    form token that is not the one in the browser's CSRF cookie.

    Under the pages' `Referrer-Policy: no-referrer` browsers send a form's Origin as
    "null", which says nothing: then Sec-Fetch-Site and the token decide."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if (origin not in (None, "null") and origin != own_origin(request)) or (
        fetch_site is not None and fetch_site != "same-origin"
    ):
        return "This form was sent from another site, so it was refused."
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not form_token or not hmac.compare_digest(cookie, form_token):
        return (
            "This form has expired or was not sent from this page. Reload the page and try again."
        )
    return ""
