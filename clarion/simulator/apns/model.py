"""What the APNs simulator holds: the reasons it answers with, the behaviours it was told
to show per device token, the notifications it accepted, and counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Apple's "Handling notification responses from APNs": every reason and its status.
REASONS: dict[str, int] = {
    "BadCollapseId": 400,
    "BadDeviceToken": 400,
    "BadExpirationDate": 400,
    "BadMessageId": 400,
    "BadPriority": 400,
    "BadTopic": 400,
    "DeviceTokenNotForTopic": 400,
    "DuplicateHeaders": 400,
    "IdleTimeout": 400,
    "InvalidPushType": 400,
    "MissingDeviceToken": 400,
    "MissingTopic": 400,
    "PayloadEmpty": 400,
    "TopicDisallowed": 400,
    "BadCertificate": 403,
    "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403,
    "Forbidden": 403,
    "InvalidProviderToken": 403,
    "MissingProviderToken": 403,
    "UnrelatedKeyIdInToken": 403,
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}
# The reason a behaviour answers with when it names only a status.
DEFAULT_REASON: dict[int, str] = {
    400: "BadDeviceToken",
    403: "Forbidden",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class ApnsRejected(Exception):
    """A request APNs answers with `status` and `{"reason": reason}` (410: and a timestamp)."""

    def __init__(self, status: int, reason: str, timestamp_ms: int | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.timestamp_ms = timestamp_ms


@dataclass(frozen=True, slots=True)
class ApnsBehaviour:
    """How APNs answers notifications to one device token, simulating its state.

    Applied once a request passed validation (a malformed request is refused whatever the
    device's state). `status` >= 400 answers with `reason` (default: `DEFAULT_REASON`) and,
    for 410, `timestamp_ms` (default: now) — the last time the token was valid. `delay`
    answers late; `hang` never answers (until the client resets the stream or the
    simulator stops); `drop` accepts and records the notification, then closes the
    connection without answering (what a sender sees when a connection dies after APNs
    took the request). `times` is how many requests it applies to (None: forever).
    """

    status: int = 200
    reason: str | None = None
    timestamp_ms: int | None = None
    times: int | None = None
    delay: float = 0.0
    hang: bool = False
    drop: bool = False

    def __post_init__(self) -> None:
        if self.status != 200 and self.status not in set(REASONS.values()):
            raise ValueError(f"status must be 200 or an APNs error status, got {self.status}")
        if self.status == 200 and self.reason is not None:
            raise ValueError("a reason needs an error status")
        if self.reason is not None and REASONS.get(self.reason) != self.status:
            raise ValueError(f"APNs does not answer {self.status} with reason {self.reason!r}")
        if self.status != 200 and self.drop:
            raise ValueError("drop accepts the notification: it takes no error status")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1, or None for forever")
        if self.delay < 0:
            raise ValueError("delay must be >= 0 seconds")

    @property
    def answer_reason(self) -> str | None:
        if self.status == 200:
            return None
        return self.reason or DEFAULT_REASON.get(self.status) or _first_reason(self.status)

    @classmethod
    def from_json(cls, data: Any) -> ApnsBehaviour:
        if not isinstance(data, dict):
            raise ValueError("behaviour must be a JSON object")
        unknown = set(data) - {"status", "reason", "timestamp_ms", "times", "delay", "hang", "drop"}
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(str(error)) from error


def _first_reason(status: int) -> str:
    return next(reason for reason, code in REASONS.items() if code == status)


@dataclass(frozen=True, slots=True)
class ApnsNotification:
    """One notification APNs accepted (200)."""

    apns_id: str
    device_token: str
    topic: str
    push_type: str | None
    priority: int  # 10 when the header is absent, as APNs assumes
    expiration: int | None
    collapse_id: str | None
    team_id: str
    key_id: str
    headers: dict[str, str]  # as received; `authorization` redacted (it is a credential)
    payload: dict[str, Any]
    body_size: int
    received_at: float
    connection: int  # which connection carried it (1, 2... in order of arrival)
    # Safari website push (topic "web.…") drops a notification APNs accepted when
    # aps.alert lacks a title or body string or url-args is not a list of strings.
    safari_problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "apns_id": self.apns_id,
            "device_token": self.device_token,
            "topic": self.topic,
            "push_type": self.push_type,
            "priority": self.priority,
            "expiration": self.expiration,
            "collapse_id": self.collapse_id,
            "team_id": self.team_id,
            "key_id": self.key_id,
            "headers": self.headers,
            "payload": self.payload,
            "body_size": self.body_size,
            "received_at": self.received_at,
            "connection": self.connection,
            "safari_problems": list(self.safari_problems),
        }


@dataclass(slots=True)
class ApnsStats:
    requests: int = 0  # every request to /3/device/...
    accepted: int = 0  # answered 200 (or accepted then dropped)
    dropped: int = 0  # accepted, then the connection was closed unanswered
    connections: int = 0  # connections opened (TLS or cleartext h2c)
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> count
    statuses: Counter[int] = field(default_factory=Counter)  # status -> count, 200 included
    per_device: Counter[str] = field(default_factory=Counter)  # token -> accepted
    apns_ids: Counter[str] = field(default_factory=Counter)  # apns-id -> times accepted

    @property
    def duplicates(self) -> dict[str, int]:
        """apns-ids accepted more than once (a sender resent what APNs had taken)."""
        return {apns_id: n for apns_id, n in self.apns_ids.items() if n > 1}

    def reset(self) -> None:
        self.requests = self.accepted = self.dropped = self.connections = 0
        for counter in (self.rejected, self.statuses, self.per_device, self.apns_ids):
            counter.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "connections": self.connections,
            "rejected": dict(sorted(self.rejected.items())),
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "per_device": dict(self.per_device),
            "duplicates": self.duplicates,
        }
