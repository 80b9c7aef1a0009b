"""An APNs provider API (HTTP/2) standing in for api.push.apple.com, for legacy Safari
(macOS Safari <= 15 website push) and any token-authenticated provider.

One port serves TLS (ALPN h2, or no ALPN at all, as aioapns connects) with a certificate
issued by a CA made at start (`ca_pem`) for localhost, 127.0.0.1, ::1 and Apple's APNs
host names, and cleartext HTTP/2 with prior knowledge (h2c) for raw clients; the first
bytes a client sends tell which.

aioapns 4 has no host/port option (it connects to ``pool.protocol_class.APNS_SERVER`` and
``APNS_PORT``): `attach_aioapns(client)` swaps that class for one naming the simulator and
makes the client trust `ca_pem`; everything else in aioapns runs as in production.

Notifications: ``POST /3/device/<token>``, validated as APNs does (see `validation` and
`credentials`); accepted ones answer 200 with `apns-id` and are recorded. Errors answer
``{"reason": ...}`` (410: and ``"timestamp"`` in ms) with the request's `apns-id`.

Control, for a simulator in another process (any HTTP/2 client, e.g. curl --http2-prior-knowledge):
  PUT    /control/keys/{team_id}/{key_id}   body: the key's public PEM        -> 204
  POST   /control/devices?topic=<website push id>[&count=N]  -> 201 ["<token>", ...]
  PUT    /control/behaviours/{token}  JSON ApnsBehaviour -> 204      DELETE -> 204
  GET    /control/notifications[/{token}]  -> [notification JSON]
  GET    /control/stats  -> stats JSON                               DELETE -> 204 (reset)
  GET    /control/ca.pem  -> the CA a client must trust;  GET /healthz
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes

from clarion.simulator.apns.credentials import (
    TOKEN_LIFETIME_SECONDS,
    ProviderKey,
    ProviderToken,
    load_public_key,
    verify_provider_token,
)
from clarion.simulator.apns.model import (
    ApnsBehaviour,
    ApnsNotification,
    ApnsRejected,
    ApnsStats,
)
from clarion.simulator.apns.tls import SimulatorCertificate, TlsSession
from clarion.simulator.apns.validation import (
    SAFARI_TOKEN_HEX_DIGITS,
    check_device_token_format,
    device_token_from_path,
    parse_notification_headers,
    parse_payload,
    safari_problems,
    single_headers,
)

log = structlog.get_logger(__name__)

# Apple: refresh a provider token no more often than every 20 minutes (per team).
TOKEN_UPDATE_INTERVAL_SECONDS = 20 * 60
MAX_CONCURRENT_STREAMS = 1000
MAX_MINT_PER_REQUEST = 100_000
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_BODY_KEPT = 64 * 1024  # beyond 4096 bytes the answer is 413 anyway
_TOKEN_CACHE_SIZE = 4096


@dataclass(slots=True)
class _TeamTokens:
    adopted_at: float | None = None  # when the team's newest token was first used
    issued: dict[str, int] = field(default_factory=dict)  # token -> iat, tokens in use


@dataclass(slots=True)
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    task: asyncio.Task[None] | None = None


class ApnsSimulator:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        token_update_interval: float = TOKEN_UPDATE_INTERVAL_SECONDS,
    ) -> None:
        """`token_update_interval`: the least time between two new provider tokens of a
        team (Apple's 20 minutes; 0 turns the TooManyProviderTokenUpdates check off)."""
        self._clock = clock
        self._token_update_interval = token_update_interval
        self.certificate = SimulatorCertificate.generate()
        self._server_context = self.certificate.server_context()
        self._keys: dict[tuple[str, str], ec.EllipticCurvePublicKey] = {}
        self._verified: dict[str, ProviderToken] = {}
        self._teams: dict[str, _TeamTokens] = {}
        self._devices: dict[str, str] = {}  # lower-case token -> topic
        self._behaviours: dict[str, ApnsBehaviour] = {}
        self._behaviour_uses_left: dict[str, int] = {}
        self._notifications: list[ApnsNotification] = []
        self._connections: set[_Connection] = set()
        self._connection_numbers = itertools.count(1)
        self._stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.host = ""
        self.port = 0
        self.stats = ApnsStats()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port); returns https://host:port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, next(self._connection_numbers)), host, port
        )
        self._stopping.clear()
        self.port = self._server.sockets[0].getsockname()[1]
        self.host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        log.info("apns simulator listening", url=self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        await self._server.wait_closed()
        self._server = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    # -- how a client reaches it ----------------------------------------------------------

    @property
    def ca_pem(self) -> str:
        """The CA that issued the simulator's certificate: what a client must trust."""
        return self.certificate.ca_pem

    def client_ssl_context(self) -> ssl.SSLContext:
        return self.certificate.client_context()

    def aioapns_protocol_class(self) -> type[Any]:
        """aioapns' production protocol, connecting to the simulator instead of
        api.push.apple.com:443 (its `host` header names the simulator too)."""
        from aioapns.connection import APNsProductionClientProtocol

        return type(
            "SimulatedAPNsProtocol",
            (APNsProductionClientProtocol,),
            {"APNS_SERVER": self.host, "APNS_PORT": self.port},
        )

    def attach_aioapns(self, client: Any) -> Any:
        """Point an `aioapns.APNs` (token or certificate auth) at the simulator: the two
        attributes its connection pool reads when it opens a connection. Returns `client`.
        Equivalent: ``APNs(..., ssl_context=simulator.client_ssl_context())`` then
        ``client.pool.protocol_class = simulator.aioapns_protocol_class()``."""
        client.pool.protocol_class = self.aioapns_protocol_class()
        client.pool.ssl_context = self.client_ssl_context()
        return client

    # -- in-process control ------------------------------------------------------------

    def register_key(
        self, team_id: str, key_id: str, public_key: ec.EllipticCurvePublicKey | str
    ) -> None:
        """Trust provider tokens of `team_id` signed with this key (PEM or key object)."""
        if isinstance(public_key, str):
            public_key = load_public_key(public_key)
        self._keys[(team_id, key_id)] = public_key
        self._verified.clear()  # a token verified with a replaced key must verify again

    def new_key(self, team_id: str | None = None, key_id: str | None = None) -> ProviderKey:
        """A fresh `.p8` signing key (random 10-character ids by default), trusted."""
        key = ProviderKey.generate(team_id, key_id)
        self.register_key(key.team_id, key.key_id, key.public_key)
        return key

    def register_device(self, token: str, topic: str) -> None:
        """A device token Safari got for the Website Push ID `topic` (64 hex digits)."""
        try:
            check_device_token_format(token)
        except ApnsRejected:
            raise ValueError(f"a Safari device token is 64 hex digits, got {token!r}") from None
        self._devices[token.lower()] = topic

    def mint_device(self, topic: str) -> str:
        """A new 64-hex-digit device token registered for `topic`."""
        token = secrets.token_hex(SAFARI_TOKEN_HEX_DIGITS // 2)
        self._devices[token] = topic
        return token

    def set_behaviour(self, token: str, behaviour: ApnsBehaviour | None) -> None:
        """Make a device answer as `behaviour` says; None restores normal answers."""
        key = self._known(token)
        self._behaviours.pop(key, None)
        self._behaviour_uses_left.pop(key, None)
        if behaviour is not None:
            self._behaviours[key] = behaviour
            if behaviour.times is not None:
                self._behaviour_uses_left[key] = behaviour.times

    def notifications(self, token: str | None = None) -> list[ApnsNotification]:
        """Accepted notifications, oldest first; for one device token when given."""
        if token is None:
            return list(self._notifications)
        key = self._known(token)
        return [n for n in self._notifications if n.device_token.lower() == key]

    def reset_stats(self) -> None:
        self.stats.reset()

    def _known(self, token: str) -> str:
        key = token.lower()
        if key not in self._devices:
            raise LookupError(f"the simulator knows no device token {token!r}")
        return key

    def _take_behaviour(self, key: str) -> ApnsBehaviour | None:
        behaviour = self._behaviours.get(key)
        if behaviour is None:
            return None
        uses_left = self._behaviour_uses_left.get(key)
        if uses_left is not None:
            if uses_left <= 1:
                del self._behaviours[key], self._behaviour_uses_left[key]
            else:
                self._behaviour_uses_left[key] = uses_left - 1
        return behaviour

    # -- requests ----------------------------------------------------------------------------

    async def _handle(self, connection: _Connection, stream_id: int, stream: _Stream) -> None:
        pseudo = {name: value for name, value in stream.headers if name.startswith(":")}
        method, path = pseudo.get(":method", ""), pseudo.get(":path", "")
        if path == "/healthz" or path.startswith("/control/"):
            status, content_type, body = self._control(method, path, bytes(stream.body))
            await connection.respond(stream_id, status, [("content-type", content_type)], body)
            return
        await self._handle_notification(connection, stream_id, stream, method, path)

    async def _handle_notification(
        self, connection: _Connection, stream_id: int, stream: _Stream, method: str, path: str
    ) -> None:
        self.stats.requests += 1
        apns_id = str(uuid.uuid4())
        try:
            token = device_token_from_path(method, path)
            headers = single_headers([h for h in stream.headers if not h[0].startswith(":")])
            # Echoed as sent, even when it is no UUID (BadMessageId): clients map the
            # answer to their request by it.
            apns_id = headers.get("apns-id") or apns_id
            provider = self._authenticate(headers.get("authorization"))
            parsed = parse_notification_headers(headers)
            check_device_token_format(token)
            topic = self._devices.get(token.lower())
            if topic is None:
                raise ApnsRejected(400, "BadDeviceToken")
            if parsed.topic != topic:
                raise ApnsRejected(400, "DeviceTokenNotForTopic")
            payload = parse_payload(bytes(stream.body), stream.size)
            behaviour = self._take_behaviour(token.lower())
            if behaviour is not None:
                await self._simulate_state(behaviour)
        except ApnsRejected as rejection:
            self.stats.rejected[rejection.reason] += 1
            self.stats.statuses[rejection.status] += 1
            answer: dict[str, Any] = {"reason": rejection.reason}
            if rejection.status == 410:
                answer["timestamp"] = rejection.timestamp_ms or int(self._clock() * 1000)
            await connection.respond(
                stream_id,
                rejection.status,
                [("apns-id", apns_id), ("content-type", "application/json")],
                json.dumps(answer).encode(),
            )
            return

        notification = ApnsNotification(
            apns_id=apns_id,
            device_token=token,
            topic=parsed.topic,
            push_type=parsed.push_type,
            priority=parsed.priority,
            expiration=parsed.expiration,
            collapse_id=parsed.collapse_id,
            team_id=provider.team_id,
            key_id=provider.key_id,
            headers={
                name: "bearer <redacted>" if name == "authorization" else value
                for name, value in headers.items()
            },
            payload=payload,
            body_size=stream.size,
            received_at=self._clock(),
            connection=connection.number,
            safari_problems=safari_problems(parsed.topic, payload),
        )
        self._notifications.append(notification)
        self.stats.accepted += 1
        self.stats.statuses[200] += 1
        self.stats.per_device[token.lower()] += 1
        self.stats.apns_ids[apns_id.lower()] += 1
        if behaviour is not None and behaviour.drop:
            self.stats.dropped += 1
            connection.close()
            return
        await connection.respond(stream_id, 200, [("apns-id", apns_id)], b"")

    def _authenticate(self, authorization: str | None) -> ProviderToken:
        token = self._verified.get(authorization or "")
        text = (authorization or "").partition(" ")[2].strip()
        if token is None:
            text, token = verify_provider_token(authorization, self._keys)
            if len(self._verified) >= _TOKEN_CACHE_SIZE:
                self._verified.clear()
            self._verified[authorization or ""] = token
        now = self._clock()
        if now - token.issued_at > TOKEN_LIFETIME_SECONDS:
            raise ApnsRejected(403, "ExpiredProviderToken")
        team = self._teams.setdefault(token.team_id, _TeamTokens())
        if text not in team.issued:
            if team.adopted_at is not None and now - team.adopted_at < self._token_update_interval:
                raise ApnsRejected(429, "TooManyProviderTokenUpdates")
            team.issued = {
                t: iat for t, iat in team.issued.items() if now - iat <= TOKEN_LIFETIME_SECONDS
            }
            team.issued[text] = token.issued_at
            team.adopted_at = now
        return token

    async def _simulate_state(self, behaviour: ApnsBehaviour) -> None:
        if behaviour.hang:
            await self._stopping.wait()  # or cancelled when the stream or connection ends
            raise ApnsRejected(503, "Shutdown")
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        reason = behaviour.answer_reason
        if reason is not None:
            raise ApnsRejected(behaviour.status, reason, behaviour.timestamp_ms)

    # -- control over HTTP/2 ----------------------------------------------------------------

    def _control(self, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p][1:]  # after "control"
        query = parse_qs(url.query)
        route = (method, parts[0] if parts else "", len(parts))
        try:
            if url.path == "/healthz" and method == "GET":
                return 200, "text/plain", b"ok"
            if route == ("GET", "ca.pem", 1):
                return 200, "application/x-pem-file", self.ca_pem.encode()
            if route == ("PUT", "keys", 3):
                self.register_key(parts[1], parts[2], body.decode())
                return 204, "text/plain", b""
            if route == ("POST", "devices", 1):
                topic = query.get("topic", [""])[0]
                count_text = query.get("count", ["1"])[0]
                if not topic:
                    raise ValueError("topic (the Website Push ID) is required")
                if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_MINT_PER_REQUEST:
                    raise ValueError(f"count must be an integer in 1..{MAX_MINT_PER_REQUEST}")
                tokens = [self.mint_device(topic) for _ in range(int(count_text))]
                return 201, "application/json", json.dumps(tokens).encode()
            if route == ("PUT", "behaviours", 2):
                self.set_behaviour(parts[1], ApnsBehaviour.from_json(json.loads(body or b"{}")))
                return 204, "text/plain", b""
            if route == ("DELETE", "behaviours", 2):
                self.set_behaviour(parts[1], None)
                return 204, "text/plain", b""
            if method == "GET" and route[1] == "notifications" and route[2] in (1, 2):
                found = self.notifications(parts[1] if len(parts) == 2 else None)
                return 200, "application/json", json.dumps([n.to_json() for n in found]).encode()
            if route == ("GET", "stats", 1):
                return 200, "application/json", json.dumps(self.stats.to_json()).encode()
            if route == ("DELETE", "stats", 1):
                self.reset_stats()
                return 204, "text/plain", b""
        except LookupError as error:
            return 404, "text/plain", str(error).encode()
        except ValueError as error:  # JSON, PEM and behaviour errors
            return 400, "text/plain", str(error).encode()
        return 404, "text/plain", b"no such control route"


class _Connection(asyncio.Protocol):
    """One client connection: sniffs TLS or h2c, then speaks HTTP/2 (h2)."""

    def __init__(self, simulator: ApnsSimulator, number: int) -> None:
        self.number = number
        self._simulator = simulator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._tls: TlsSession | None = None
        self._h2: H2Connection | None = None
        self._streams: dict[int, _Stream] = {}
        self._window_opened = asyncio.Event()
        self._closed = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._simulator._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._simulator._connections.discard(self)
        for stream in self._streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self._streams.clear()
        self._window_opened.set()

    def data_received(self, data: bytes) -> None:
        try:
            if self._tls is not None:
                self._receive_tls(data)
            elif self._h2 is not None:
                self._receive_h2(data)
            else:
                self._sniff(data)
        except (ssl.SSLError, ProtocolError) as error:
            log.debug("apns simulator closes a connection", error=str(error))
            self._flush()
            self.close()

    # -- the way in ------------------------------------------------------------------------

    def _sniff(self, data: bytes) -> None:
        self._buffer += data
        received = bytes(self._buffer)
        if received[:1] == b"\x16":  # a TLS handshake record
            self._buffer.clear()
            self._tls = TlsSession(self._simulator._server_context)
            self._receive_tls(received)
        elif received.startswith(_PREFACE):
            self._buffer.clear()
            self._start_h2()
            self._receive_h2(received)
        elif not _PREFACE.startswith(received):
            self.close()  # HTTP/1.1 or anything else: APNs speaks HTTP/2 only

    def _receive_tls(self, data: bytes) -> None:
        assert self._tls is not None
        plaintext = self._tls.receive(data)
        if self._h2 is None and self._tls.handshake_done:
            if self._tls.alpn not in (None, "h2"):
                self.close()
                return
            self._start_h2()
        self._flush()
        if plaintext:
            self._receive_h2(plaintext)
        if self._tls.closed_by_peer:
            self.close()

    def _start_h2(self) -> None:
        self._h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self._h2.initiate_connection()
        self._h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS})
        self._simulator.stats.connections += 1
        self._flush()

    # -- HTTP/2 -------------------------------------------------------------------------------

    def _receive_h2(self, data: bytes) -> None:
        assert self._h2 is not None
        for event in self._h2.receive_data(data):
            if isinstance(event, RequestReceived):
                # header_encoding="utf-8": names and values arrive as str
                headers = [(str(name), str(value)) for name, value in event.headers or []]
                self._streams[event.stream_id] = _Stream(headers=headers)
            elif isinstance(event, DataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.size += len(event.data)
                    if len(stream.body) < _MAX_BODY_KEPT:
                        stream.body += event.data
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.task = asyncio.get_running_loop().create_task(
                        self._simulator._handle(self, event.stream_id, stream)
                    )
            elif isinstance(event, StreamReset):
                stream = self._streams.pop(event.stream_id, None)
                if stream is not None and stream.task is not None:
                    stream.task.cancel()
            elif isinstance(event, WindowUpdated):
                self._window_opened.set()
            elif isinstance(event, ConnectionTerminated):
                self._flush()
                self.close()
                return
        self._flush()

    async def respond(
        self, stream_id: int, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        if self._closed or self._h2 is None or stream_id not in self._streams:
            return
        response = [(":status", str(status)), *headers]
        if body:
            response.append(("content-length", str(len(body))))
        try:
            self._h2.send_headers(stream_id, response, end_stream=not body)
            while body and not self._closed:
                window = min(
                    self._h2.local_flow_control_window(stream_id),
                    self._h2.max_outbound_frame_size,
                )
                if window <= 0:
                    self._flush()
                    self._window_opened.clear()
                    await self._window_opened.wait()
                    continue
                chunk, body = body[:window], body[window:]
                self._h2.send_data(stream_id, chunk, end_stream=not body)
        except (StreamClosedError, ProtocolError):
            pass  # the client reset the stream meanwhile
        self._streams.pop(stream_id, None)
        self._flush()

    def _flush(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        data = self._h2.data_to_send() if self._h2 is not None else b""
        if self._tls is not None:
            self._tls.send(data)
            data = self._tls.pending()
        if data:
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
