"""Legacy Safari pushes to APNs over HTTP/2 with aioapns (token authentication).

aioapns gives the connection pool, the HTTP/2 connection (h2) and its stream
accounting; this module sets what it lacks for a sender that must not send twice:

- Where to connect: aioapns has no host option (it connects to its protocol class's
  APNS_SERVER:APNS_PORT), so a subclass names CLARION_APNS_URL's host and port, and the
  TLS context trusts CLARION_APNS_CA_FILE when given (the simulator's CA).
- One provider token per team: aioapns signs a new JWT for every connection, and APNs
  answers 429 TooManyProviderTokenUpdates to a team whose token changes more often than
  every 20 minutes. `ProviderTokens` keeps one per team, shared by every connection,
  and makes the next one once a TOKEN_PERIOD_SECONDS period has begun and the current
  one has been in use for MIN_TOKEN_USE_SECONDS (or is MAX_TOKEN_AGE_SECONDS old): in
  use 20-50 minutes, never near APNs' hour. Its `iat` is the period's start and ES256 is
  signed deterministically (RFC 6979), so delivery processes with the same key make the
  very same token for a period (a process starting just after a period began, while the
  others keep the previous token, is the exception: docs/services/delivery.md).
- No resend behind our back: aioapns' pool resends a request whose connection dropped
  (max_connection_attempts) with the same apns-id, and APNs removes no duplicate.
  Requests go through `pool.acquire()` and our protocol's `send`; each answer says
  whether the request was written before its connection closed (`unconfirmed`: APNs may
  have taken it; the domain counts it sent, domain/apns.py), or a GOAWAY named it
  unprocessed (retried). The worker decides every retry.
- Answers read by stream, not by apns-id: aioapns looks its answer up by the response's
  apns-id header and raises KeyError (or waits forever, for a 200) when there is none.
- A timeout (`asyncio.wait_for`, CLARION_PUSH_TIMEOUT_SECONDS) resets the stream and
  frees its slot on the connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aioapns.connection import (
    APNsKeyConnectionPool,
    APNsProductionClientProtocol,
    AuthorizationHeaderProvider,
)
from aioapns.exceptions import ConnectionClosed
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import H2Error
from yarl import URL

from services.delivery.domain.apns import valid_device_token
from services.delivery.domain.ports import ApnsAnswer, ApnsCredentials, ApnsRequest
from services.delivery.domain.rules import Reason
from services.delivery.settings import DeliverySettings
from services.kit.clock import Clock, SystemClock
from services.kit.logging import get_logger

log = get_logger(__name__)

# A team's provider token is made anew every this long (APNs: not more often than every
# 20 minutes, and none older than an hour).
TOKEN_PERIOD_SECONDS = 30 * 60
MIN_TOKEN_USE_SECONDS = 21 * 60
MAX_TOKEN_AGE_SECONDS = 50 * 60
# Pools (each with its connections) kept per site key; the least recently used beyond
# this is closed.
MAX_POOLS = 256
# What an error answer's body may be (APNs sends {"reason": ..., "timestamp": ...}).
MAX_ANSWER_BYTES = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Token:
    key_digest: bytes
    period: int
    header: str
    # When this process first used it (the injected clock's seconds).
    first_used: float


class ProviderTokens:
    """One APNs provider token (ES256 JWT) per team (see the module's docstring), on the
    injected clock. `made` counts the tokens made (tests)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._keys: dict[bytes, ec.EllipticCurvePrivateKey] = {}
        self.made = 0

    def header(self, team_id: str, key_id: str, private_key: bytes) -> str:
        """`bearer <jwt>` for the team, the same until the period ends (or the key changes)."""
        now = self._clock.now().timestamp()
        period = int(now // TOKEN_PERIOD_SECONDS)
        digest = hashlib.sha256(key_id.encode() + b"\0" + private_key).digest()
        found = self._tokens.get(team_id)
        if found is not None and found.key_digest == digest:
            # A rotated key gets its token at once; otherwise keep the current one until
            # a new period has begun, it served long enough and is not too old.
            if found.period == period or (
                now - found.first_used < MIN_TOKEN_USE_SECONDS
                and now - found.period * TOKEN_PERIOD_SECONDS < MAX_TOKEN_AGE_SECONDS
            ):
                return found.header
        key = self._keys.get(digest)
        if key is None:
            loaded = serialization.load_der_private_key(private_key, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError("the site's APNs key is not an EC (P-256) key")
            key = self._keys[digest] = loaded
        header = _b64(json.dumps({"alg": "ES256", "kid": key_id}, separators=(",", ":")).encode())
        claims = {"iss": team_id, "iat": period * TOKEN_PERIOD_SECONDS}
        signing_input = f"{header}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        der = key.sign(
            signing_input.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        )
        r, s = decode_dss_signature(der)
        signature = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        token = _Token(digest, period, f"bearer {signing_input}.{signature}", now)
        self._tokens[team_id] = token
        self.made += 1
        return token.header


class _SharedToken(AuthorizationHeaderProvider):
    """What aioapns asks for a connection's `authorization`: the team's shared token."""

    def __init__(self, tokens: ProviderTokens, credentials: ApnsCredentials) -> None:
        self._tokens = tokens
        self._team_id = credentials.team_id
        self._key_id = credentials.key_id
        self._private_key = credentials.private_key

    def get_header(self) -> str:
        return self._tokens.header(self._team_id, self._key_id, self._private_key)


class _NotProcessed(Exception):
    """The connection closed with a GOAWAY whose last stream is below this request's:
    APNs did not process it."""


class _AnswerLost(Exception):
    """The request was written, then the connection closed without its answer."""


@dataclass(frozen=True, slots=True)
class _Result:
    status: int
    body: bytes


class ApnsProtocol(APNsProductionClientProtocol):
    """aioapns' production protocol with answers read per stream (see the module's
    docstring); `host_protocol(host, port)` names where it connects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, asyncio.Future[_Result]] = {}
        self._statuses: dict[int, int] = {}
        self._bodies: dict[int, bytearray] = {}
        self._last_processed: int | None = None
        self._lost = False

    async def send(self, request: ApnsRequest, topic: str) -> _Result:
        if self._lost:
            raise ConnectionClosed("the connection was closed")
        stream_id = await self.free_channels.acquire()
        if self._lost:
            raise ConnectionClosed("the connection was closed")
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", f"/3/device/{request.device_token}"),
            ("host", self.APNS_SERVER),
            ("apns-id", request.apns_id),
            ("apns-topic", topic),
            ("apns-push-type", "alert"),
            ("apns-expiration", str(request.expiration)),
            ("apns-priority", str(request.priority)),
        ]
        if request.collapse_id:
            headers.append(("apns-collapse-id", request.collapse_id))
        if self.auth_provider is not None:
            headers.append(("authorization", self.auth_provider.get_header()))
        future: asyncio.Future[_Result] = self.loop.create_future()
        self._pending[stream_id] = future
        try:
            self.conn.send_headers(stream_id=stream_id, headers=headers)
            self.conn.send_data(stream_id=stream_id, data=request.payload, end_stream=True)
            self.flush()
        except H2Error as error:
            self._pending.pop(stream_id, None)
            self.free_channels.release()
            raise ConnectionClosed(f"could not write the request: {error}") from None
        try:
            return await future
        except asyncio.CancelledError:
            # A timeout: reset the stream (its answer is no longer awaited) and free it.
            if self._pending.pop(stream_id, None) is not None and not self._lost:
                with contextlib.suppress(H2Error):
                    self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
                    self.flush()
                self._drop_stream(stream_id)
                self.free_channels.release()
            raise

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except H2Error as error:
            log.warning("APNs connection sent bad HTTP/2; closing it", error=str(error))
            self.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                status = dict(event.headers or []).get(b":status", b"0")
                self._statuses[event.stream_id] = int(status) if status.isdigit() else 0
            elif isinstance(event, DataReceived):
                body = self._bodies.setdefault(event.stream_id, bytearray())
                if len(body) < MAX_ANSWER_BYTES:
                    body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._answered(event.stream_id)
            elif isinstance(event, StreamReset):
                self._answered(event.stream_id, reset=True)
            elif isinstance(event, RemoteSettingsChanged):
                self.on_remote_settings_changed(event.changed_settings)
            elif isinstance(event, ConnectionTerminated):
                # GOAWAY: streams above last_stream_id were not processed.
                self._last_processed = event.last_stream_id or 0
                self.close()
        if not self._lost:
            self.flush()

    def _answered(self, stream_id: int, *, reset: bool = False) -> None:
        status = self._statuses.pop(stream_id, 0)
        body = bytes(self._bodies.pop(stream_id, b""))
        future = self._pending.pop(stream_id, None)
        if future is None:
            return
        self.free_channels.release()
        if future.done():
            return
        if reset and not status:
            future.set_exception(_NotProcessed())
        else:
            future.set_result(_Result(status, body))

    def _drop_stream(self, stream_id: int) -> None:
        self._statuses.pop(stream_id, None)
        self._bodies.pop(stream_id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        super().connection_lost(exc)
        last = self._last_processed
        for stream_id, future in self._pending.items():
            if not future.done():
                lost = _NotProcessed() if last is not None and stream_id > last else _AnswerLost()
                future.set_exception(lost)
        self._pending.clear()


def host_protocol(host: str, port: int) -> type[ApnsProtocol]:
    """The protocol class for connections to host:port (also its `host` header)."""
    return type("HostApnsProtocol", (ApnsProtocol,), {"APNS_SERVER": host, "APNS_PORT": port})


class _Pool(APNsKeyConnectionPool):
    """aioapns' pool for one site key, whose connections share the team's token and
    speak `ApnsProtocol`; never resends (we call acquire and send ourselves)."""

    def __init__(
        self,
        credentials: ApnsCredentials,
        auth: AuthorizationHeaderProvider,
        protocol: type[ApnsProtocol],
        ssl_context: ssl.SSLContext,
        max_connections: int,
    ) -> None:
        super().__init__(
            key="",  # signing is `auth`'s
            key_id=credentials.key_id,
            team_id=credentials.team_id,
            topic=credentials.topic,
            max_connections=max_connections,
            max_connection_attempts=1,
            ssl_context=ssl_context,
        )
        self.protocol_class = protocol
        self._auth = auth

    async def create_connection(self) -> ApnsProtocol:  # type: ignore[override]
        factory = partial(
            self.protocol_class, self.apns_topic, self.loop, self.discard_connection, self._auth
        )
        return await self._create_connection(factory)  # type: ignore[return-value]

    def discard_connection(self, connection: Any) -> None:
        with contextlib.suppress(ValueError):
            self.connections.remove(connection)


class ApnsSender:
    """The ApnsTransport port: one aioapns pool per site key, one token per team."""

    def __init__(
        self,
        *,
        url: str,
        timeout_seconds: float,
        ca_file: str = "",
        max_connections: int = 2,
        clock: Clock | None = None,
        ssl_context_factory: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        parsed = URL(url)
        assert parsed.host is not None
        self._protocol = host_protocol(parsed.host, parsed.port or 443)
        self._timeout = timeout_seconds
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._ssl_context_factory = ssl_context_factory
        self._ssl_context: ssl.SSLContext | None = None
        self.tokens = ProviderTokens(clock or SystemClock())
        self._pools: OrderedDict[tuple[str, str, bytes, str], _Pool] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: DeliverySettings, clock: Clock) -> ApnsSender:
        return cls(
            url=settings.apns_url,
            timeout_seconds=settings.push_timeout_seconds,
            ca_file=settings.apns_ca_file,
            max_connections=settings.apns_max_connections,
            clock=clock,
        )

    async def start(self) -> None:
        if self._ssl_context is None:
            if self._ssl_context_factory is not None:
                self._ssl_context = self._ssl_context_factory()
            else:
                # Fails fast on an unreadable CA file.
                self._ssl_context = ssl.create_default_context(cafile=self._ca_file or None)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def _pool(self, credentials: ApnsCredentials) -> _Pool:
        key = (
            credentials.team_id,
            credentials.key_id,
            hashlib.sha256(credentials.private_key).digest(),
            credentials.topic,
        )
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        assert self._ssl_context is not None, "start() first"
        pool = _Pool(
            credentials,
            _SharedToken(self.tokens, credentials),
            self._protocol,
            self._ssl_context,
            self._max_connections,
        )
        self._pools[key] = pool
        while len(self._pools) > MAX_POOLS:
            _, oldest = self._pools.popitem(last=False)
            oldest.close()
        return pool

    async def send(self, credentials: ApnsCredentials, request: ApnsRequest) -> ApnsAnswer:
        if not valid_device_token(request.device_token):
            return ApnsAnswer(status=400, reason="BadDeviceToken")
        try:
            return await asyncio.wait_for(self._send(credentials, request), self._timeout)
        except TimeoutError:
            return ApnsAnswer(error=Reason.TIMEOUT)

    async def _send(self, credentials: ApnsCredentials, request: ApnsRequest) -> ApnsAnswer:
        pool = self._pool(credentials)
        try:
            connection = await pool.acquire()
        except (ApnsConnectionError, OSError):
            return ApnsAnswer(error=Reason.CONNECTION_ERROR)
        assert isinstance(connection, ApnsProtocol)
        try:
            result = await connection.send(request, credentials.topic)
        except (ConnectionClosed, _NotProcessed):
            return ApnsAnswer(error=Reason.CONNECTION_ERROR)
        except _AnswerLost:
            return ApnsAnswer(error=Reason.CONNECTION_ERROR, unconfirmed=True)
        return _answer(result)


def _answer(result: _Result) -> ApnsAnswer:
    if result.status == 200:
        return ApnsAnswer(status=200)
    reason, timestamp = "", None
    try:
        parsed = json.loads(result.body) if result.body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason", ""))[:64]
        if isinstance(parsed.get("timestamp"), int):
            timestamp = parsed["timestamp"]
    return ApnsAnswer(status=result.status, reason=reason, timestamp_ms=timestamp)


__all__ = ["ApnsProtocol", "ApnsSender", "ProviderTokens", "host_protocol"]
