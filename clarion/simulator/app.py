"""An RFC 8030 push service over real HTTP, standing in for FCM, autopush, Apple and WNS.

Push: ``POST /push/{token}``. The service's simulated state (a configured error
`Behaviour`) is answered first; otherwise VAPID, headers and body are validated (see
`validation` for the status policy) and the payload is decrypted with http_ece, an
implementation independent of Clarion's own. Accepted messages answer 201 with a
Location and are held per subscription as pending forever (the simulated user agent
never connects), so a later message with the same Topic replaces the held one
(RFC 8030 §5.4, counted in `stats.replaced`). TTL=0 messages are held too.

Control, for a simulator in another process:
  POST   /control/subscriptions?count=N[&application_server_key=<b64url>]
         -> 201 [subscription JSON]
  PUT    /control/behaviours/{token}  JSON Behaviour  -> 204     DELETE -> 204
  GET    /control/messages/{token}  -> [message JSON, plaintext base64url, payload: the
         decrypted body as a JSON object (subscriber_id, engagement_token...) or null]
  GET    /control/stats  -> stats JSON                           DELETE -> 204 (reset)
  GET    /healthz
Endpoints minted over HTTP use the origin the control request came to, so they are
reachable the way the caller reached the simulator.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus

import http_ece
import structlog
from aiohttp import web

from clarion.simulator.model import (
    Behaviour,
    ReceivedMessage,
    SimulatedSubscription,
    SimulatorStats,
    b64url_decode,
    token_of,
)
from clarion.simulator.validation import (
    MAX_BODY_BYTES,
    PushRejected,
    VapidCredentials,
    check_aes128gcm_shape,
    check_claims,
    check_content_encoding,
    parse_topic,
    parse_ttl,
    parse_urgency,
    parse_vapid,
)

log = structlog.get_logger(__name__)

MAX_MINT_PER_REQUEST = 100_000
_VAPID_CACHE_SIZE = 4096  # senders reuse one JWT per origin for hours; verify it once


class PushServiceSimulator:
    def __init__(self, *, clock: Callable[[], float] = time.time, decrypt: bool = True) -> None:
        self._clock = clock
        self._decrypt = decrypt
        self._subscriptions: dict[str, SimulatedSubscription] = {}
        self._behaviours: dict[str, Behaviour] = {}
        self._behaviour_uses_left: dict[str, int] = {}
        # token -> message id -> message, in arrival order; token -> topic -> message id
        self._pending: dict[str, dict[str, ReceivedMessage]] = {}
        self._topics: dict[str, dict[str, str]] = {}
        self._vapid_cache: dict[str, VapidCredentials] = {}
        self._message_ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.stats = SimulatorStats()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the base URL."""
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                web.post("/push/{token}", self._handle_push),
                web.post("/control/subscriptions", self._handle_mint),
                web.put("/control/behaviours/{token}", self._handle_set_behaviour),
                web.delete("/control/behaviours/{token}", self._handle_clear_behaviour),
                web.get("/control/messages/{token}", self._handle_messages),
                web.get("/control/stats", self._handle_stats),
                web.delete("/control/stats", self._handle_reset_stats),
                web.get("/healthz", self._handle_health),
            ]
        )
        # handler_cancellation: a hung request ends when its client disconnects.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._stopping.clear()
        bound_port = runner.addresses[0][1]
        self.base_url = f"http://{_reachable_host(host)}:{bound_port}"
        log.info("push simulator listening", base_url=self.base_url, decrypt=self._decrypt)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._stopping.set()  # releases hung requests
        await self._runner.cleanup()
        self._runner = None

    # -- in-process control ------------------------------------------------------------

    def mint_subscription(
        self, *, application_server_key: bytes | None = None
    ) -> SimulatedSubscription:
        """A fresh subscription; with application_server_key, other VAPID keys get 403."""
        if not self.base_url:
            raise RuntimeError("start() the simulator before minting subscriptions")
        return self._mint(self.base_url, application_server_key)

    def set_behaviour(self, endpoint_or_token: str, behaviour: Behaviour | None) -> None:
        """Make a subscription answer as `behaviour` says; None restores normal answers."""
        token = self._known_token(endpoint_or_token)
        if behaviour is None:
            self._behaviours.pop(token, None)
            self._behaviour_uses_left.pop(token, None)
            return
        self._behaviours[token] = behaviour
        if behaviour.times is None:
            self._behaviour_uses_left.pop(token, None)
        else:
            self._behaviour_uses_left[token] = behaviour.times

    def messages(self, endpoint_or_token: str) -> list[ReceivedMessage]:
        """Messages held for a subscription, oldest first (Topic replacements applied)."""
        token = self._known_token(endpoint_or_token)
        return list(self._pending.get(token, {}).values())

    def reset_stats(self) -> None:
        self.stats.reset()

    def _mint(self, origin: str, application_server_key: bytes | None) -> SimulatedSubscription:
        token = secrets.token_urlsafe(16)
        subscription = SimulatedSubscription.mint(
            token, f"{origin}/push/{token}", application_server_key
        )
        self._subscriptions[token] = subscription
        return subscription

    def _known_token(self, endpoint_or_token: str) -> str:
        token = token_of(endpoint_or_token)
        if token not in self._subscriptions:
            raise LookupError(f"the simulator minted no subscription {endpoint_or_token!r}")
        return token

    def _take_behaviour(self, token: str) -> Behaviour | None:
        behaviour = self._behaviours.get(token)
        if behaviour is None:
            return None
        uses_left = self._behaviour_uses_left.get(token)
        if uses_left is not None:
            if uses_left <= 1:
                del self._behaviours[token], self._behaviour_uses_left[token]
            else:
                self._behaviour_uses_left[token] = uses_left - 1
        return behaviour

    # -- push ----------------------------------------------------------------------------

    async def _handle_push(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        try:
            return await self._accept_push(request)
        except PushRejected as rejection:
            self.stats.rejected[rejection.status] += 1
            return web.Response(
                status=rejection.status, text=rejection.reason, headers=rejection.headers
            )

    async def _accept_push(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        subscription = self._subscriptions.get(token)
        if subscription is None:
            raise PushRejected(404, "subscription not found")
        self.stats.requests_per_endpoint[subscription.endpoint] += 1

        behaviour = self._take_behaviour(token)
        if behaviour is not None:
            await self._simulate_state(behaviour)

        origin = f"{request.scheme}://{request.host}"
        credentials = self._verified_credentials(request.headers.get("Authorization"))
        check_claims(credentials.claims, origin=origin, now=self._clock())
        key = subscription.application_server_key
        if key is not None and credentials.public_key != key:
            raise PushRejected(
                403, "VAPID key does not match the applicationServerKey of the subscription"
            )

        headers = request.headers
        ttl = parse_ttl(headers.get("TTL"))
        urgency = parse_urgency(headers.get("Urgency"))
        topic = parse_topic(headers.get("Topic"))

        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise PushRejected(413, f"payload exceeds {MAX_BODY_BYTES} bytes")
        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            raise PushRejected(413, f"payload exceeds {MAX_BODY_BYTES} bytes")
        plaintext = self._open(body, headers.get("Content-Encoding"), subscription)

        message = ReceivedMessage(
            id=str(next(self._message_ids)),
            token=token,
            ttl=ttl,
            urgency=urgency,
            topic=topic,
            vapid_claims=credentials.claims,
            vapid_public_key=credentials.public_key,
            plaintext=plaintext,
            body_size=len(body),
            received_at=self._clock(),
        )
        self._hold(message)
        self.stats.received += 1
        self.stats.per_endpoint[subscription.endpoint] += 1
        return web.Response(
            status=201, headers={"Location": f"{origin}/message/{message.id}", "TTL": str(ttl)}
        )

    async def _simulate_state(self, behaviour: Behaviour) -> None:
        if behaviour.hang:
            await self._stopping.wait()  # or cancelled when the client disconnects
            raise PushRejected(503, "push service shutting down")
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.status >= 400:
            retry_after = behaviour.retry_after
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            raise PushRejected(behaviour.status, HTTPStatus(behaviour.status).phrase, headers)

    def _verified_credentials(self, authorization: str | None) -> VapidCredentials:
        key = authorization or ""  # "" is never cached: parse_vapid rejects it
        credentials = self._vapid_cache.get(key)
        if credentials is None:
            credentials = parse_vapid(authorization)
            if len(self._vapid_cache) >= _VAPID_CACHE_SIZE:
                self._vapid_cache.clear()
            self._vapid_cache[key] = credentials
        return credentials

    def _open(
        self, body: bytes, content_encoding: str | None, subscription: SimulatedSubscription
    ) -> bytes | None:
        if not body:
            return b""  # RFC 8030 allows a push without payload (no encoding needed)
        check_content_encoding(content_encoding)
        check_aes128gcm_shape(body)
        if not self._decrypt:
            return None
        try:
            plaintext: bytes = http_ece.decrypt(
                body,
                private_key=subscription.private_key,  # sender's key comes from the keyid
                auth_secret=subscription.auth,
                version="aes128gcm",
            )
        except (http_ece.ECEException, ValueError):
            raise PushRejected(400, "payload could not be decrypted") from None
        self.stats.decrypted += 1
        return plaintext

    def _hold(self, message: ReceivedMessage) -> None:
        pending = self._pending.setdefault(message.token, {})
        if message.topic is not None:
            topics = self._topics.setdefault(message.token, {})
            replaced_id = topics.get(message.topic)
            if replaced_id is not None and pending.pop(replaced_id, None) is not None:
                self.stats.replaced += 1
            topics[message.topic] = message.id
        pending[message.id] = message

    # -- control over HTTP ----------------------------------------------------------------

    async def _handle_mint(self, request: web.Request) -> web.Response:
        count_text = request.query.get("count", "1")
        if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_MINT_PER_REQUEST:
            raise web.HTTPBadRequest(text=f"count must be an integer in 1..{MAX_MINT_PER_REQUEST}")
        key_text = request.query.get("application_server_key")
        try:
            key = b64url_decode(key_text) if key_text else None
        except (ValueError, binascii.Error):
            raise web.HTTPBadRequest(text="application_server_key must be base64url") from None
        origin = f"{request.scheme}://{request.host}"
        minted = [self._mint(origin, key).to_json() for _ in range(int(count_text))]
        return web.json_response(minted, status=201)

    async def _handle_set_behaviour(self, request: web.Request) -> web.Response:
        try:
            behaviour = Behaviour.from_json(await request.json())
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"invalid behaviour: {error}") from None
        with _unknown_as_404():
            self.set_behaviour(request.match_info["token"], behaviour)
        return web.Response(status=204)

    async def _handle_clear_behaviour(self, request: web.Request) -> web.Response:
        with _unknown_as_404():
            self.set_behaviour(request.match_info["token"], None)
        return web.Response(status=204)

    async def _handle_messages(self, request: web.Request) -> web.Response:
        with _unknown_as_404():
            messages = self.messages(request.match_info["token"])
        return web.json_response([message.to_json() for message in messages])

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def _handle_reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.Response(status=204)

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")



@contextmanager
def _unknown_as_404() -> Iterator[None]:
    try:
        yield
    except LookupError as error:
        raise web.HTTPNotFound(text=str(error)) from None


def _reachable_host(host: str) -> str:
    """The host to put in URLs: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
