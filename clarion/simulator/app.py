"""An RFC 8030 push service over real HTTP, standing in for FCM, autopush, Apple and WNS.

Push: ``POST /push/{token}``. The service's simulated state (a configured error
`Behaviour`) is answered first; otherwise VAPID, headers and body are validated (see
`validation` for the status policy; refusals answer autopush's JSON error body) and the
payload is decrypted with http_ece, an implementation independent of Clarion's own. The
body is read raw (no gzip/deflate decoding by aiohttp): a compressed push is a 400.

What a real push service accepts is accepted even when a browser would drop it later
(a body that does not decrypt, a multi-record body, no VAPID to a subscription made
without a key...): the message is held, and a conformance problem (model.Problem) is
recorded per message, queryable with `conformance_problems(endpoint)` and counted in
`stats.conformance_problems`. Accepted messages answer 201 with a Location and are held
per subscription as pending forever (the simulated user agent never connects), so a
later message with the same Topic replaces the held one (RFC 8030 §5.4, counted in
`stats.replaced`). TTL=0 messages are held too.

Control, for a simulator in another process:
  POST   /control/subscriptions?count=N[&application_server_key=<b64url>]
         -> 201 [subscription JSON]
  PUT    /control/behaviours/{token}  JSON Behaviour  -> 204     DELETE -> 204
  GET    /control/messages/{token}  -> [message JSON, plaintext base64url, payload: the
         decrypted body as a JSON object (subscriber_id, engagement_token...) or null]
  GET    /control/problems[/{token}]  -> [conformance problem JSON], oldest first
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus

import http_ece
import structlog
from aiohttp import web

from clarion.simulator.model import (
    Behaviour,
    ConformanceProblem,
    Problem,
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
    aes128gcm_problem,
    authorization_scheme,
    check_claims,
    check_content_encoding,
    header_params,
    parse_topic,
    parse_ttl,
    parse_urgency,
    parse_vapid,
    urgency_is_valid,
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
        self._problems: dict[str, list[ConformanceProblem]] = {}
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
                web.get("/control/problems", self._handle_problems),
                web.get("/control/problems/{token}", self._handle_problems),
                web.get("/control/stats", self._handle_stats),
                web.delete("/control/stats", self._handle_reset_stats),
                web.get("/healthz", self._handle_health),
            ]
        )
        # handler_cancellation: a hung request ends when its client disconnects.
        # auto_decompress=False: a push body is read as sent; Content-Encoding gzip is
        # refused by the push checks, not decoded (or failed with a 500) by aiohttp.
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
            auto_decompress=False,
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

    def conformance_problems(
        self, endpoint_or_token: str | None = None
    ) -> list[ConformanceProblem]:
        """Problems of accepted messages (to one subscription, or to all), oldest first:
        what a real push service accepts but a browser drops, or may (model.Problem)."""
        if endpoint_or_token is None:
            every = itertools.chain.from_iterable(self._problems.values())
            return sorted(every, key=lambda problem: int(problem.message_id))
        return list(self._problems.get(self._known_token(endpoint_or_token), []))

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
            return web.json_response(
                rejection.body(), status=rejection.status, headers=rejection.headers
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
        headers = request.headers
        problems: list[tuple[Problem, str]] = []
        credentials = self._credentials(request, subscription, problems)

        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise PushRejected(413, f"payload exceeds {MAX_BODY_BYTES} bytes")
        ttl = parse_ttl(headers.get("TTL"))
        # Checked before the body is read: a gzip body is never decoded.
        encoding = _encoding_of(headers) if request.content_length else None
        topic = parse_topic(headers.get("Topic"))
        raw_urgency = headers.get("Urgency")
        if not urgency_is_valid(raw_urgency):
            problems.append((Problem.INVALID_URGENCY, f"Urgency {raw_urgency!r} goes as normal"))

        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            raise PushRejected(413, f"payload exceeds {MAX_BODY_BYTES} bytes")
        if body and encoding is None:  # no Content-Length (chunked): checked now
            encoding = _encoding_of(headers)
        plaintext = self._open(body, encoding, headers, subscription, problems)

        message = ReceivedMessage(
            id=str(next(self._message_ids)),
            token=token,
            ttl=ttl,
            urgency=parse_urgency(raw_urgency),
            topic=topic,
            vapid_claims={} if credentials is None else credentials.claims,
            vapid_public_key=b"" if credentials is None else credentials.public_key,
            plaintext=plaintext,
            body_size=len(body),
            received_at=self._clock(),
            problems=tuple(code for code, _ in problems),
        )
        self._hold(message)
        self._record_problems(subscription, message.id, problems)
        self.stats.received += 1
        self.stats.per_endpoint[subscription.endpoint] += 1
        return web.Response(
            status=201, headers={"Location": f"{origin}/message/{message.id}", "TTL": str(ttl)}
        )

    def _credentials(
        self,
        request: web.Request,
        subscription: SimulatedSubscription,
        problems: list[tuple[Problem, str]],
    ) -> VapidCredentials | None:
        """The request's verified VAPID credentials; None for a VAPID-less push to a
        subscription made without a key, which autopush accepts (a problem here)."""
        authorization = request.headers.get("Authorization")
        key = subscription.application_server_key
        if authorization is None and key is None:
            problems.append(
                (Problem.NO_VAPID_UNRESTRICTED, "no VAPID Authorization header")
            )
            return None
        credentials = self._verified_credentials(
            authorization, request.headers.get("Crypto-Key")
        )
        # The origin as a URL serializes it (lower-case scheme and host, no default
        # port): what a sender's aud must equal, byte for byte.
        check_claims(credentials.claims, origin=str(request.url.origin()), now=self._clock())
        if key is not None and credentials.public_key != key:
            raise PushRejected(
                403, "VAPID key does not match the applicationServerKey of the subscription"
            )
        if credentials.legacy:
            scheme = authorization_scheme(authorization or "")
            problems.append(
                (Problem.LEGACY_VAPID, f"draft scheme {scheme!r} with Crypto-Key p256ecdsa")
            )
        return credentials

    def _record_problems(
        self,
        subscription: SimulatedSubscription,
        message_id: str,
        problems: list[tuple[Problem, str]],
    ) -> None:
        for code, detail in problems:
            self._problems.setdefault(subscription.token, []).append(
                ConformanceProblem(code, subscription.endpoint, message_id, detail)
            )
            self.stats.conformance_problems[code.value] += 1

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

    def _verified_credentials(
        self, authorization: str | None, crypto_key: str | None
    ) -> VapidCredentials:
        key = authorization or ""  # "" is never cached: parse_vapid rejects it
        if key and authorization_scheme(key) != "vapid":
            # Draft schemes carry the key in Crypto-Key, beside the message's own dh.
            key += "\n" + header_params(crypto_key).get("p256ecdsa", "")
        credentials = self._vapid_cache.get(key)
        if credentials is None:
            credentials = parse_vapid(authorization, crypto_key)
            if len(self._vapid_cache) >= _VAPID_CACHE_SIZE:
                self._vapid_cache.clear()
            self._vapid_cache[key] = credentials
        return credentials

    def _open(
        self,
        body: bytes,
        encoding: str | None,
        headers: Mapping[str, str],
        subscription: SimulatedSubscription,
        problems: list[tuple[Problem, str]],
    ) -> bytes | None:
        """The plaintext a browser would show; None when it would drop the body (the
        problem is added) or the simulator does not decrypt."""
        if not body:
            return b""  # RFC 8030 allows a push without payload (no encoding needed)
        if encoding == "aesgcm":
            problems.append((Problem.LEGACY_AESGCM, "Content-Encoding aesgcm, not aes128gcm"))
            salt = header_params(headers.get("Encryption")).get("salt", "")
            dh = header_params(headers.get("Crypto-Key")).get("dh")
            if dh is None:
                problems.append((Problem.UNDECRYPTABLE, "aesgcm without a dh in Crypto-Key"))
                return None
            parameters = {"salt": _b64(salt), "dh": _b64(dh), "version": "aesgcm"}
        else:
            shape = aes128gcm_problem(body)
            if shape is not None:
                problems.append(shape)
                return None
            parameters = {"version": "aes128gcm"}  # sender's key comes from the keyid
        if not self._decrypt:
            return None
        try:
            plaintext: bytes = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth,
                **parameters,
            )
        except (http_ece.ECEException, ValueError, binascii.Error):
            problems.append(
                (Problem.UNDECRYPTABLE, "does not decrypt with the subscription's keys")
            )
            return None
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

    async def _handle_problems(self, request: web.Request) -> web.Response:
        with _unknown_as_404():
            problems = self.conformance_problems(request.match_info.get("token"))
        return web.json_response([problem.to_json() for problem in problems])

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def _handle_reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.Response(status=204)

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")



def _encoding_of(headers: Mapping[str, str]) -> str:
    return check_content_encoding(
        headers.get("Content-Encoding"), headers.get("Encryption"), headers.get("Crypto-Key")
    )


def _b64(text: str) -> bytes:
    try:
        return b64url_decode(text.rstrip("="))
    except (ValueError, binascii.Error):
        return b""  # then it does not decrypt: a problem, as in a browser


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
