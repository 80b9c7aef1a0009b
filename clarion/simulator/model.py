"""What the simulator holds: subscriptions it minted, behaviours it was told to show,
messages it accepted, and counters."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError (binascii.Error) on junk."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_of(endpoint_or_token: str) -> str:
    """The subscription token: the last path segment of an endpoint, or the token itself."""
    return endpoint_or_token.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class SimulatedSubscription:
    """A browser's push subscription, with the private half only the user agent would hold."""

    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    p256dh: bytes  # uncompressed P-256 point, 65 bytes
    auth: bytes  # 16-byte auth secret
    # The VAPID public key the subscription was created with (PushManager.subscribe's
    # applicationServerKey); when set, pushes signed with another key get 403, as on FCM.
    application_server_key: bytes | None = None

    @classmethod
    def mint(
        cls, token: str, endpoint: str, application_server_key: bytes | None = None
    ) -> SimulatedSubscription:
        private_key = ec.generate_private_key(ec.SECP256R1())
        return cls(
            token=token,
            endpoint=endpoint,
            private_key=private_key,
            p256dh=private_key.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            ),
            auth=os.urandom(16),
            application_server_key=application_server_key,
        )

    def to_json(self) -> dict[str, Any]:
        """The shape of the browser's PushSubscription.toJSON()."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(self.p256dh), "auth": b64url_encode(self.auth)},
        }


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the service answers pushes to one subscription, simulating its state.

    A `status` >= 400 is answered before any validation (the service's own state wins);
    `retry_after` is sent with it as its Retry-After header: seconds, or an HTTP date
    (RFC 9110 §10.2.3, e.g. "Wed, 21 Oct 2026 07:28:00 GMT") as given; `hang` never
    answers until the client gives up; `delay` (seconds) answers normally but slowly.
    `times` is how many requests the behaviour applies to before the subscription
    answers normally again (None: forever).
    """

    status: int = 201
    retry_after: int | str | None = None
    times: int | None = None
    hang: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if isinstance(self.retry_after, str):
            try:
                parsedate_to_datetime(self.retry_after)
            except (TypeError, ValueError):
                raise ValueError("retry_after must be seconds or an HTTP date") from None
        elif self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0 seconds")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1, or None for forever")
        if self.delay < 0:
            raise ValueError("delay must be >= 0 seconds")

    @classmethod
    def from_json(cls, data: Any) -> Behaviour:
        if not isinstance(data, dict):
            raise ValueError("behaviour must be a JSON object")
        unknown = set(data) - {"status", "retry_after", "times", "hang", "delay"}
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(str(error)) from error


class Problem(StrEnum):
    """A conformance problem: a message a real push service accepts (201) although a
    browser drops it, or may, later. The simulator accepts it too and records the problem,
    so a test can ask what a real answer would not tell. A closed set."""

    # The body does not decrypt with the subscription's keys (tampered, encrypted for
    # another subscription, not aes128gcm at all): the browser discards it.
    UNDECRYPTABLE = "undecryptable"
    # An aes128gcm body of more than one record (RFC 8291 §4 allows exactly one).
    MULTI_RECORD = "multi_record"
    # No VAPID to a subscription created without an applicationServerKey: autopush
    # accepts it; Chrome (FCM) and Safari only subscribe with a key.
    NO_VAPID_UNRESTRICTED = "no_vapid_unrestricted"
    # The draft `WebPush <JWT>` / `Bearer <JWT>` scheme with Crypto-Key p256ecdsa
    # (autopush accepts it; RFC 8292 is `vapid t=..., k=...`).
    LEGACY_VAPID = "legacy_vapid"
    # Content-Encoding aesgcm (draft-ietf-webpush-encryption-04), not RFC 8291's aes128gcm.
    LEGACY_AESGCM = "legacy_aesgcm"
    # An Urgency other than very-low, low, normal, high: ignored by autopush (the message
    # goes as normal), so the sender's intent is lost.
    INVALID_URGENCY = "invalid_urgency"


@dataclass(frozen=True, slots=True)
class ConformanceProblem:
    """One problem of one accepted message; `detail` says what was wrong, never secrets."""

    code: Problem
    endpoint: str
    message_id: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "endpoint": self.endpoint,
            "message_id": self.message_id,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One push message the service accepted (201) and holds for the user agent."""

    id: str
    token: str
    ttl: int
    urgency: str  # RFC 8030 §5.3: "normal" when the header is absent
    topic: str | None
    vapid_claims: dict[str, Any]
    vapid_public_key: bytes
    # None when the simulator runs with decrypt=False, or when the browser would drop
    # the body (an undecryptable or multi-record one: see `problems`)
    plaintext: bytes | None
    body_size: int
    received_at: float
    problems: tuple[Problem, ...] = ()

    def payload(self) -> dict[str, Any] | None:
        """The decrypted body as a JSON object (what a Clarion service worker reads:
        title, run_id, subscriber_id, engagement_token...); None when it is not one."""
        if not self.plaintext:
            return None
        try:
            value = json.loads(self.plaintext)
        except ValueError:  # UnicodeDecodeError included
            return None
        return value if isinstance(value, dict) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ttl": self.ttl,
            "urgency": self.urgency,
            "topic": self.topic,
            "vapid_claims": self.vapid_claims,
            "vapid_public_key": b64url_encode(self.vapid_public_key),
            "plaintext": None if self.plaintext is None else b64url_encode(self.plaintext),
            "payload": self.payload(),
            "body_size": self.body_size,
            "received_at": self.received_at,
            "problems": [problem.value for problem in self.problems],
        }


@dataclass(slots=True)
class SimulatorStats:
    requests: int = 0  # every POST /push/{token}
    received: int = 0  # answered 201
    decrypted: int = 0  # bodies http_ece decrypted
    replaced: int = 0  # pending messages replaced by a newer one with the same Topic
    rejected: Counter[int] = field(default_factory=Counter)  # status -> count
    per_endpoint: Counter[str] = field(default_factory=Counter)  # endpoint -> messages received
    # endpoint -> requests that reached the service (counted on arrival, whatever the answer)
    requests_per_endpoint: Counter[str] = field(default_factory=Counter)
    # Problem code -> accepted messages that have it (see Problem)
    conformance_problems: Counter[str] = field(default_factory=Counter)

    @property
    def problems_total(self) -> int:
        return sum(self.conformance_problems.values())

    def reset(self) -> None:
        self.requests = self.received = self.decrypted = self.replaced = 0
        self.rejected.clear()
        self.conformance_problems.clear()
        self.per_endpoint.clear()
        self.requests_per_endpoint.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "received": self.received,
            "decrypted": self.decrypted,
            "replaced": self.replaced,
            "rejected": {str(status): n for status, n in sorted(self.rejected.items())},
            "per_endpoint": dict(self.per_endpoint),
            "requests_per_endpoint": dict(self.requests_per_endpoint),
            "conformance_problems": dict(sorted(self.conformance_problems.items())),
        }
