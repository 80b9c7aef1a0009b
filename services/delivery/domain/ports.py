"""What delivery needs from its peers, as small ports; adapters/grpc_peers.py implements
them over gRPC, unit tests with in-memory fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.delivery.domain.descriptions import RunDescription
from services.delivery.domain.goals import ConversionGoal
from services.delivery.domain.rules import PushAnswer, Reason
from services.delivery.store import Member, OutboxItem


@dataclass(frozen=True)
class SiteCredentials:
    site_id: str
    vapid_private_key: bytes = field(repr=False)
    vapid_public_key: bytes
    vapid_subject: str
    # Signs the engagement token each recipient's payload carries.
    engagement_secret: bytes = field(repr=False)
    # The id of the key above (the site's current key), and every key pair the site
    # signs with by id (PKCS#8 DER private keys; the current one included): a recipient
    # whose vapid_key_id names one is signed with it.
    current_vapid_key_id: str = ""
    vapid_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)


class CredentialsUnavailable(Exception):
    """The site's credentials could not be had. `permanent` when the site has none
    (its recipients fail); otherwise the chunk is tried again later."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class PeerUnavailable(Exception):
    """A peer could not answer now; `permanent` when asking again cannot help (the
    peer refused the request itself). Its text is what a failed run's failure message
    says (for a refused audience: the segment was not found, or the definition was
    refused)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# Segment lists at most this many subscriber ids, and as many profile ids, in one
# ListAudienceMembers request: a longer listed audience is pulled in slices.
MAX_LISTED_PER_PAGE_REQUEST = 5000


@dataclass(frozen=True)
class AudiencePage:
    members: list[Member]
    # Empty on the last page.
    next_page_token: str


class VapidSigning(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def authorization(self, audience: str, subject: str, expires_in: int = 43200) -> str:
        """The `Authorization: vapid t=<jwt>, k=<key>` header value for one push service."""
        ...


class Encryptor(Protocol):
    name: str

    def encrypt_batch(
        self, payloads: Sequence[bytes], recipients: Sequence[tuple[bytes, bytes]]
    ) -> list[bytes | Exception]:
        """aes128gcm bodies, one per (p256dh, auth) with the payload of the same index;
        a failed slot holds its exception. Blocking: call it from a thread."""
        ...

    def signer(self, private_key: bytes) -> VapidSigning: ...


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One POST to a push service; `tag` comes back with its answer."""

    tag: int
    endpoint: str
    body: bytes
    authorization: str


class PushStream(Protocol):
    """One chunk's requests in flight and their answers, in the order they finish."""

    @property
    def in_flight(self) -> int:
        """Requests submitted whose answers have not been taken yet."""
        ...

    def submit(self, requests: Sequence[PushRequest]) -> None:
        """Starts the requests; returns at once."""
        ...

    async def answers(self) -> list[tuple[int, PushAnswer]]:
        """Waits for at least one answer (none in flight: returns []) and takes all
        that have arrived."""
        ...

    def ready(self) -> list[tuple[int, PushAnswer]]:
        """Takes the answers that have arrived, without waiting."""
        ...

    def close(self) -> None:
        """Stops waiting: answers still to come are dropped (a lost lease)."""
        ...


class PushTransport(Protocol):
    """HTTP to push services."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream(self, headers: Mapping[str, str]) -> PushStream:
        """A stream of requests that all carry `headers` (TTL, Urgency, Topic...)."""
        ...


class RateLimits(Protocol):
    """How fast each push service (origin) may be sent to, adapted to its answers."""

    def delay(self, origin: str) -> float:
        """0.0 (and the request counted) if `origin` may take one more request now,
        else the seconds until it may; never waits."""
        ...

    def answered(self, origin: str, status: int | None) -> None:
        """One answer of `origin` (its HTTP status; None: no answer): a 429 slows it,
        a success lets it speed up again."""
        ...


class SiteCredentialsSource(Protocol):
    async def site_credentials(self, site_id: str) -> SiteCredentials: ...


@dataclass(frozen=True)
class ApnsCredentials:
    """A site's legacy Safari (APNs token authentication) credentials."""

    site_id: str
    # PKCS#8 DER of the P-256 .p8 key that signs the provider token.
    private_key: bytes = field(repr=False)
    key_id: str
    team_id: str
    # apns-topic: the site's Website Push ID.
    topic: str
    # Safari opens this URL with each %@ replaced by one of the push's url-args.
    url_format_string: str


class ApnsCredentialsSource(Protocol):
    async def apns_credentials(self, site_id: str) -> ApnsCredentials:
        """Raises CredentialsUnavailable (`permanent`: the site has no legacy Safari
        configuration)."""
        ...


@dataclass(frozen=True, slots=True)
class ApnsRequest:
    """One notification to one device token (POST /3/device/<token>)."""

    device_token: str
    # The JSON payload ({"aps": ...}).
    payload: bytes
    # The same on every attempt for a recipient of a run (domain/apns.py).
    apns_id: str
    # apns-expiration (epoch seconds), apns-priority, apns-collapse-id.
    expiration: int
    priority: int
    collapse_id: str


@dataclass(frozen=True, slots=True)
class ApnsAnswer:
    """APNs' answer to one request: its status and reason ({"reason": ...}), or none.

    Without a status: `error` says why (timeout, connection_error), and `unconfirmed`
    that the request had been written on a connection that then closed without an
    answer for it (not refused by a GOAWAY naming it unprocessed): APNs may have taken it.
    """

    status: int | None = None
    reason: str = ""
    # 410: when the token stopped being valid (ms since the epoch).
    timestamp_ms: int | None = None
    error: Reason | None = None
    unconfirmed: bool = False


class ApnsTransport(Protocol):
    """HTTP/2 to APNs (adapters/apns_sender.py)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, credentials: ApnsCredentials, request: ApnsRequest) -> ApnsAnswer:
        """Sends one notification within the push timeout; never raises for what APNs or
        the network did (that is the answer)."""
        ...


class AudienceSource(Protocol):
    async def audience_page(
        self,
        site_id: str,
        snapshot_time: datetime,
        subscriber_ids: Sequence[str],
        page_token: str,
        page_size: int,
        *,
        selector: bytes = b"",
        audience_key: str = "",
        profile_ids: Sequence[str] = (),
        profile_properties: Sequence[str] = (),
    ) -> AudiencePage:
        """One page of the run's audience snapshot; raises PeerUnavailable. `selector`
        (a serialized clarion.segment.v1.AudienceSelector; b"" for every subscriber) is
        sent with every page, under `audience_key` (the run id), which names the result
        segment keeps so every page reads the same audience. `subscriber_ids` and
        `profile_ids` (at most MAX_LISTED_PER_PAGE_REQUEST of each) list the audience
        instead: those subscribers and every subscriber of those profiles. Each member
        carries those of `profile_properties` its profile has (Member.profile_properties)."""
        ...

    async def inactive_subscribers(self, site_id: str, subscriber_ids: Sequence[str]) -> set[str]:
        """Which of these are no longer active; raises PeerUnavailable."""
        ...


class SubscriberPruner(Protocol):
    async def unsubscribe(self, site_id: str, gone: Sequence[tuple[str, str]]) -> None:
        """Unsubscribes (subscriber_id, reason) pairs; raises when it did not happen."""
        ...


class OutcomeSink(Protocol):
    async def record_outcomes(self, site_id: str, outcomes: Sequence[OutboxItem]) -> None:
        """Raises when the outcomes were not recorded; repeats are ignored by the sink."""
        ...

    async def record_audience(
        self,
        site_id: str,
        run_id: str,
        campaign_id: str,
        audience: int | None,
        *,
        test: bool = False,
        conversion_goal: ConversionGoal | None = None,
        description: RunDescription | None = None,
    ) -> None:
        """The run's audience size (None: the run just started, its audience is not known
        yet), with its conversion goal and description (None: it has none)."""
        ...
