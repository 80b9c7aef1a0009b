"""Who is calling, for which site: the auth interceptor and the site context.

Every call carries `authorization: Bearer <token>`. The token is either a site API
key (the site is the key's) or the internal token that services share to call each
other on behalf of a site named in `x-clarion-site-id`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import structlog
from cachetools import TTLCache

from services.kit.errors import (
    ClarionError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    to_status,
)
from services.kit.logging import get_logger
from services.kit.validation import check_request

SITE_HEADER = "x-clarion-site-id"
REQUEST_ID_HEADER = "x-request-id"
# A caller's request id is echoed into logs and peer calls: a long one is cut here.
MAX_REQUEST_ID_LENGTH = 128

_site_id: ContextVar[str | None] = ContextVar("clarion_site_id", default=None)
_request_id: ContextVar[str | None] = ContextVar("clarion_request_id", default=None)
# When the call being served must be answered (time.monotonic()), if its caller set a
# deadline: the peer calls made while serving it end before it (Peers.timeout).
_deadline: ContextVar[float | None] = ContextVar("clarion_deadline", default=None)

log = get_logger("clarion.auth")

# How long a service that resolves API keys through campaign trusts an answer.
API_KEY_CACHE_SECONDS = 30.0

# Calls that need no site: health checks and reflection.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def current_site_id() -> str:
    site_id = _site_id.get()
    if site_id is None:
        raise RuntimeError("no site bound: called outside an authenticated request")
    return site_id


def required_site_id() -> str:
    """The call's site, for handlers of internal-only methods that act on a site's data:
    those methods let the internal token through without one, so it is refused here."""
    site_id = current_site_id()
    if not site_id:
        raise _missing_site()
    return site_id


def _missing_site() -> Unauthenticated:
    return Unauthenticated("MISSING_SITE", f"internal calls must name the site in '{SITE_HEADER}'")


def current_request_id() -> str:
    return _request_id.get() or uuid.uuid4().hex


def request_time_left() -> float | None:
    """Seconds until the deadline of the call being served (negative once passed); None
    when its caller set none, or outside a call."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def hash_api_key(api_key: str) -> str:
    # API keys are 256-bit random strings, so one unsalted SHA-256 is enough to store them.
    return hashlib.sha256(api_key.encode()).hexdigest()


class SiteResolver(Protocol):
    async def resolve(self, api_key: str) -> str | None:
        """The site id an API key belongs to, or None."""


class CachingSiteResolver:
    """Caches a slower resolver (a call to the campaign service) for a short time.

    Both caches are bounded (least recently used goes first), so a flood of random keys
    costs lookups, never memory; unknown keys are remembered only briefly. A key deleted
    from the campaign service (SiteService.RotateApiKey) is still accepted here for up to
    `ttl_seconds` (API_KEY_CACHE_SECONDS by default). `timer` is the caches' clock.
    """

    def __init__(
        self,
        resolve: Callable[[str], Awaitable[str | None]],
        ttl_seconds: float = API_KEY_CACHE_SECONDS,
        negative_ttl_seconds: float = 2.0,
        max_keys: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._known: TTLCache[str, str] = TTLCache(max_keys, ttl_seconds, timer)
        self._unknown: TTLCache[str, bool] = TTLCache(max_keys, negative_ttl_seconds, timer)

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)

    def __bool__(self) -> bool:
        # A resolver is there even while its caches are empty (`site_resolver or default`
        # in a server factory must keep it).
        return True

    async def resolve(self, api_key: str) -> str | None:
        digest = hash_api_key(api_key)
        site_id = self._known.get(digest)
        if site_id is not None:
            return site_id
        if digest in self._unknown:
            return None
        site_id = await self._resolve(api_key)
        if site_id:
            self._known[digest] = site_id
        else:
            self._unknown[digest] = True
        return site_id


@dataclass(frozen=True)
class Caller:
    site_id: str
    internal: bool


class SiteAuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, binds site and request id to the call, maps ClarionError to a status.

    Every kind of call: unary, server streams, and client (or bidirectional) streams,
    whose caller is authenticated before any message is read and each of whose messages
    is checked (check_request) as it arrives, a bad one ending the call."""

    def __init__(
        self,
        resolver: SiteResolver,
        internal_token: str,
        internal_only_methods: Iterable[str] = (),
        internal_services: Iterable[str] = (),
    ) -> None:
        """Methods of `internal_services` (full names, e.g. clarion.campaign.v1.
        SiteInternalService), and single `internal_only_methods`, take the internal token
        only: a site API key gets PERMISSION_DENIED."""
        self._resolver = resolver
        self._internal_token = internal_token
        self._internal_only = frozenset(internal_only_methods)
        self._internal_services = frozenset(internal_services)

    def _is_internal(self, method: str) -> bool:
        # A method is "/<package>.<Service>/<Method>".
        return method in self._internal_only or method.split("/")[1] in self._internal_services

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        return _wrap_handler(handler, method, self._authenticate)

    async def _authenticate(self, method: str, metadata: dict[str, str]) -> Caller:
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(
                "MISSING_API_KEY", "missing 'authorization: Bearer <api key>' metadata"
            )
        if self._internal_token and hmac.compare_digest(token, self._internal_token):
            site_id = metadata.get(SITE_HEADER, "")
            if not site_id and not self._is_internal(method):
                raise _missing_site()
            return Caller(site_id=site_id, internal=True)
        if self._is_internal(method):
            raise PermissionDenied("INTERNAL_ONLY", f"{method} is for Clarion's own services")
        site_id = await self._resolver.resolve(token)
        if site_id is None:
            raise Unauthenticated("INVALID_API_KEY", "the API key is not valid for any site")
        return Caller(site_id=site_id, internal=False)


def _wrap_handler(
    handler: grpc.RpcMethodHandler,
    method: str,
    authenticate: Callable[[str, dict[str, str]], Awaitable[Caller]],
) -> grpc.RpcMethodHandler:
    async def bind(context: grpc.aio.ServicerContext, request: Any) -> None:
        """Authenticates, then checks the request: nothing about a request is looked at
        (or answered) before its caller is known."""
        await bind_caller(context)
        check(request)

    async def bind_caller(context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        request_id = metadata.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            request_id = request_id[:MAX_REQUEST_ID_LENGTH]
        _request_id.set(request_id)
        remaining = context.time_remaining()
        _deadline.set(None if remaining is None else time.monotonic() + remaining)
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        caller = await authenticate(method, metadata)
        _site_id.set(caller.site_id)
        structlog.contextvars.bind_contextvars(site_id=caller.site_id)

    def check(request: Any) -> None:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(
                "UNDECODABLE_REQUEST",
                f"the request body is not a valid {request.type_name} message",
            )
        check_request(request)

    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A client stream's messages, each checked as a unary request is: the first bad
        one ends the call (INVALID_ARGUMENT) before the handler sees it."""
        async for request in requests:
            check(request)
            yield request

    async def fail(context: grpc.aio.ServicerContext, error: Exception) -> None:
        if isinstance(error, ClarionError):
            if error.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                log.info("call refused", reason=error.reason)
            await context.abort_with_status(to_status(error))
        log.exception("unhandled error")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")

    if handler.unary_unary:
        inner_unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            structlog.contextvars.clear_contextvars()
            try:
                await bind(context, request)
                return await inner_unary(request, context)
            except Exception as error:
                if _is_abort(error):
                    raise
                await fail(context, error)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            structlog.contextvars.clear_contextvars()
            try:
                await bind(context, request)
                async for item in inner_stream(request, context):
                    yield item
            except Exception as error:
                if _is_abort(error):
                    raise
                await fail(context, error)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream:
        inner_bidi = handler.stream_stream

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            structlog.contextvars.clear_contextvars()
            try:
                # The caller is known before any message of the stream is read.
                await bind_caller(context)
                async for item in inner_bidi(checked(requests), context):
                    yield item
            except Exception as error:
                if _is_abort(error):
                    raise
                await fail(context, error)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        inner_client_stream = handler.stream_unary

        async def stream_unary(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> Any:
            structlog.contextvars.clear_contextvars()
            try:
                await bind_caller(context)
                return await inner_client_stream(checked(requests), context)
            except Exception as error:
                if _is_abort(error):
                    raise
                await fail(context, error)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    raise NotImplementedError(f"{method}: a handler of no known kind")


@dataclass(frozen=True)
class _Undecodable:
    """Stands for a request body that did not parse: grpc would answer UNKNOWN before any
    handler ran; the handler answers INVALID_ARGUMENT instead, after authentication."""

    type_name: str


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    type_name = getattr(getattr(deserialize, "__self__", None), "__name__", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError, or a nested message past the recursion limit
            return _Undecodable(type_name)

    return parse


def _is_abort(error: BaseException) -> bool:
    # context.abort raises this to end the call; it must pass through untouched.
    return type(error).__name__ == "AbortError"


def internal_metadata(internal_token: str, site_id: str) -> tuple[tuple[str, str], ...]:
    """Metadata for a service-to-service call on behalf of a site."""
    return (
        ("authorization", f"Bearer {internal_token}"),
        (SITE_HEADER, site_id),
        (REQUEST_ID_HEADER, current_request_id()),
    )


def bind_site(site_id: str) -> None:
    """Binds a site outside a request (background workers), for logs and scoping."""
    _site_id.set(site_id)
    structlog.contextvars.bind_contextvars(site_id=site_id)
