"""The rules of subscribers: what a valid subscription is, state changes, paging.

Everything a request carries is validated before anything is written, so a refused
request leaves nothing behind.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from services.kit.clock import Clock
from services.kit.egress import EgressPolicy, EgressRefused
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.pages import decode_page_token, encode_page_token
from services.kit.pages import page_size as bounded_page_size
from services.segment.models import (
    MAX_APNS_TOPIC_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_PROFILE_ID_LENGTH,
    MAX_PROPERTY_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TIMEZONE_LENGTH,
    PROFILE_SCOPE,
    Browser,
    PropertyType,
    event_scope,
)
from services.segment.store import (
    AudienceEntry,
    EventPlan,
    NewSubscription,
    ProfilePlan,
    ProfileState,
    StoredProfile,
    Subscriber,
    SubscriberStore,
)

log = get_logger(__name__)

SUBSCRIBER_ID_PREFIX = "sub"
DEFAULT_UNSUBSCRIBE_REASON = "user_unsubscribed"
# A subscriber whose browser did not say its time zone: delivery at a local time then
# uses the site's.
DEFAULT_TIMEZONE = ""
P256DH_LENGTH = 65
AUTH_LENGTH = 16
DEFAULT_LIST_PAGE_SIZE = 50
MAX_LIST_PAGE_SIZE = 1000
DEFAULT_AUDIENCE_PAGE_SIZE = 1000
MAX_AUDIENCE_PAGE_SIZE = 5000
MAX_BATCH_REGISTRATIONS = 1000
MAX_BATCH_UNSUBSCRIPTIONS = 1000
# CheckSubscribers, and the subscriber_ids of a test send's ListAudienceMembers.
MAX_SUBSCRIBER_IDS = 5000
# The profile_ids of a listed audience's ListAudienceMembers.
MAX_PROFILE_IDS = 5000
# The profile properties an audience page may carry (what a run's templates read).
MAX_AUDIENCE_PROPERTY_NAMES = 100

_SUBSCRIBER_ID = re.compile(r"sub_[0-9a-f]{32}")
# Campaign's id of a site's VAPID key (SiteService.ImportVapidKey, Site.vapid_keys).
_VAPID_KEY_ID = re.compile(r"vk_[0-9a-f]{32}")
# An APNs device token as Safari hands it out: 32 bytes in hex.
_DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{64}")
# A Website Push ID: "web." and a reverse domain (campaign checks it the same way).
_WEBSITE_PUSH_ID = re.compile(r"web(\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?){2,}")
# RFC 3986 characters only: no spaces, controls or non-ASCII in an endpoint.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


@dataclass(slots=True)  # not frozen: one a registration, and a frozen init is slow
class Registration:
    """A RegisterSubscriber request as the adapter hands it over, not yet validated.

    `browser` None means the caller did not say (stored as OTHER).
    """

    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser | None
    timezone: str
    profile_id: str
    # The site's VAPID key the browser subscribed under; "": the site's current key.
    vapid_key_id: str = ""
    # Legacy Safari, instead of endpoint and keys: the APNs device token and the Website
    # Push ID it registered under (RegisterSubscriberRequest.apns_device).
    apns_device_token: str = ""
    apns_topic: str = ""

    @property
    def is_apns(self) -> bool:
        return bool(self.apns_device_token or self.apns_topic)


@dataclass(frozen=True)
class SubscriberPage:
    subscribers: list[Subscriber]
    # Empty only on the last page (AIP-158).
    next_page_token: str


@dataclass(frozen=True)
class Unsubscription:
    """A BatchUnsubscribeSubscribers entry as the adapter hands it over: `reason` is the
    stored word ("push_service_410"), "" when unspecified, None when not a known value."""

    subscriber_id: str
    reason: str | None


@dataclass(frozen=True)
class AudiencePage:
    members: list[AudienceEntry]
    # Empty only on the last page (AIP-158).
    next_page_token: str
    # profile_id -> the asked properties its profile has, in the order asked; a profile
    # with none of them is not here.
    profile_properties: dict[str, tuple[tuple[str, TypedValue], ...]]


@cache
def _known_timezones() -> frozenset[str]:
    # Scans the tz database once; ZoneInfo() alone would also accept file paths.
    return frozenset(zoneinfo.available_timezones())


def validate_endpoint(endpoint: str, *, policy: EgressPolicy) -> str:
    field = "push_subscription.endpoint"
    if not endpoint:
        raise InvalidArgument(
            "INVALID_ENDPOINT", f"{field} is required: the push service URL", field=field
        )
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise InvalidArgument(
            "INVALID_ENDPOINT",
            f"{field} must be at most {MAX_ENDPOINT_LENGTH} characters, got {len(endpoint)}",
            field=field,
        )
    if not _URL_CHARACTERS.fullmatch(endpoint):
        raise InvalidArgument(
            "INVALID_ENDPOINT",
            f"{field} must be a URL of printable ASCII characters (percent-encode the rest)",
            field=field,
        )
    # The outbound URL policy: https, a known push service host, port 443, no IP
    # address that is not public (in any spelling), no user info. Delivery checks the
    # same policy again when it connects.
    try:
        policy.check_url(endpoint)
    except EgressRefused as refused:
        raise InvalidArgument(
            "INVALID_ENDPOINT", f"{field} {refused.detail}", field=field, refusal=refused.reason
        ) from None
    return endpoint


def validate_device_token(device_token: str, field: str = "apns_device.device_token") -> str:
    if not _DEVICE_TOKEN.fullmatch(device_token):
        raise InvalidArgument(
            "INVALID_DEVICE_TOKEN",
            f"{field} must be the APNs device token Safari handed out: 64 hex digits",
            field=field,
        )
    return device_token


def validate_apns_topic(topic: str, field: str = "apns_device.topic") -> str:
    if len(topic) > MAX_APNS_TOPIC_LENGTH or not _WEBSITE_PUSH_ID.fullmatch(topic):
        raise InvalidArgument(
            "INVALID_WEBSITE_PUSH_ID",
            f"{field} must be the site's Website Push ID the device registered under: "
            "\"web.\" and a reverse domain, e.g. web.com.example.news",
            field=field,
        )
    return topic


def validate_web_push_browser(browser: Browser | None) -> Browser | None:
    """A Web Push subscription's browser: any but SAFARI_LEGACY, whose devices register
    with an apns_device (a legacy Safari subscriber is always an APNs device)."""
    if browser is Browser.SAFARI_LEGACY:
        raise InvalidArgument(
            "INVALID_BROWSER",
            "BROWSER_SAFARI_LEGACY is for legacy Safari devices, which register with "
            "apns_device, not push_subscription (Safari 16 and later is BROWSER_SAFARI)",
            field="browser",
        )
    return browser


def validate_p256dh(p256dh: bytes) -> bytes:
    field = "push_subscription.p256dh"
    expected = f"{field} must be a {P256DH_LENGTH}-byte uncompressed P-256 point"
    if len(p256dh) != P256DH_LENGTH:
        raise InvalidArgument(
            "INVALID_P256DH", f"{expected}, got {len(p256dh)} bytes", field=field
        )
    if p256dh[0] != 0x04:
        raise InvalidArgument(
            "INVALID_P256DH",
            f"{expected}, starting with 0x04; got 0x{p256dh[0]:02x}",
            field=field,
        )
    if not on_p256(p256dh):
        raise InvalidArgument(
            "INVALID_P256DH", f"{expected}; this point is not on the curve", field=field
        )
    return p256dh


# P-256 (SEC 2, 2.4.2): y^2 = x^3 - 3x + b over the prime field p. Its cofactor is 1, so
# a point on the curve is in the group, and 65 bytes starting 0x04 cannot spell the
# point at infinity: this is all OpenSSL's point decoding checks of an uncompressed key.
_P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def on_p256(point: bytes) -> bool:
    """Whether a 65-byte uncompressed point (0x04 || x || y) lies on P-256. Plain integer
    arithmetic: about 2 µs, where building a key object to the same end took 11 µs, the
    largest single cost of an imported row."""
    x = int.from_bytes(point[1:33])
    y = int.from_bytes(point[33:65])
    p = _P256_P
    return x < p and y < p and (y * y - x * (x * x - 3) - _P256_B) % p == 0


def validate_auth(auth: bytes) -> bytes:
    field = "push_subscription.auth"
    if len(auth) != AUTH_LENGTH:
        raise InvalidArgument(
            "INVALID_AUTH",
            f"{field} must be the {AUTH_LENGTH}-byte authentication secret, got {len(auth)} bytes",
            field=field,
        )
    return auth


def validate_timezone(timezone: str) -> str:
    if not timezone:
        return DEFAULT_TIMEZONE
    if len(timezone) > MAX_TIMEZONE_LENGTH or timezone not in _known_timezones():
        raise InvalidArgument(
            "INVALID_TIMEZONE",
            f"timezone must be an IANA time zone name such as 'Europe/Berlin', got {timezone[:80]!r}",
            field="timezone",
        )
    return timezone


def validate_profile_id(profile_id: str) -> str | None:
    if not profile_id:
        return None
    if len(profile_id) > MAX_PROFILE_ID_LENGTH:
        raise InvalidArgument(
            "INVALID_PROFILE_ID",
            f"profile_id must be at most {MAX_PROFILE_ID_LENGTH} characters, got {len(profile_id)}",
            field="profile_id",
        )
    if not profile_id.isprintable():
        raise InvalidArgument(
            "INVALID_PROFILE_ID",
            "profile_id must not contain control characters",
            field="profile_id",
        )
    return profile_id


def validate_vapid_key_id(vapid_key_id: str) -> str | None:
    """The form of a VAPID key id (`vk_` + 32 lowercase hex digits); None for "" (the
    site's current key). Whether the site has that key is campaign's to know: delivery
    fails a subscriber whose key the site lacks (no_vapid_credentials)."""
    if not vapid_key_id:
        return None
    if not _VAPID_KEY_ID.fullmatch(vapid_key_id):
        raise InvalidArgument(
            "INVALID_VAPID_KEY_ID",
            "vapid_key_id must be a VAPID key id of the site (`vk_` and 32 lowercase hex "
            "digits, as SiteService.ImportVapidKey answered), or empty for the site's "
            "current key",
            field="vapid_key_id",
        )
    return vapid_key_id


def _require_subscriber_id(subscriber_id: str, field: str = "subscriber_id") -> None:
    if not subscriber_id:
        raise InvalidArgument("MISSING_SUBSCRIBER_ID", f"{field} is required", field=field)


def _require_listed_profile_id(profile_id: str, field: str) -> None:
    """A listed audience's profile id: one a profile could have (validate_profile_id),
    so a malformed id is refused instead of quietly reaching nobody."""
    if not profile_id or len(profile_id) > MAX_PROFILE_ID_LENGTH or not profile_id.isprintable():
        raise InvalidArgument(
            "INVALID_PROFILE_ID",
            f"{field} must be a profile id: 1 to {MAX_PROFILE_ID_LENGTH} printable characters",
            field=field,
        )


def _require_batch_size(size: int, maximum: int, field: str) -> None:
    if size > maximum:
        raise InvalidArgument(
            "BATCH_TOO_LARGE",
            f"{field} has {size} entries; send at most {maximum} per call",
            field=field,
        )


def error_within(prefix: str, error: InvalidArgument) -> InvalidArgument:
    """The same error about one entry of a batch: its field and message name the entry
    ("requests[3].push_subscription.p256dh")."""
    field = error.metadata.get("field", "")
    qualified = f"{prefix}.{field}" if field else prefix
    message = error.message
    if field and message.startswith(field):
        message = f"{prefix}.{message}"
    else:
        message = f"{prefix}: {message}"
    return InvalidArgument(error.reason, message, **{**error.metadata, "field": qualified})


def _not_found(subscriber_id: str) -> NotFound:
    return NotFound(
        "SUBSCRIBER_NOT_FOUND",
        f"no subscriber {subscriber_id[:80]!r} in this site",
        field="subscriber_id",
    )


class Subscribers:
    """Use cases of the SegmentService over one store, one clock."""

    def __init__(self, store: SubscriberStore, clock: Clock, *, egress: EgressPolicy):
        self._store = store
        self._clock = clock
        self._egress = egress

    def _validated(self, registration: Registration) -> NewSubscription:
        """The one validation of a registration, for RegisterSubscriber and each entry of
        BatchRegisterSubscribers."""
        if registration.is_apns:
            return self._validated_device(registration)
        return NewSubscription(
            endpoint=validate_endpoint(registration.endpoint, policy=self._egress),
            p256dh=validate_p256dh(registration.p256dh),
            auth=validate_auth(registration.auth),
            browser=validate_web_push_browser(registration.browser) or Browser.OTHER,
            timezone=validate_timezone(registration.timezone),
            profile_id=validate_profile_id(registration.profile_id),
            vapid_key_id=validate_vapid_key_id(registration.vapid_key_id),
        )

    def _validated_device(self, registration: Registration) -> NewSubscription:
        """A legacy Safari device: its token and topic, browser SAFARI_LEGACY (or
        unspecified), no Web Push fields. Stored with the token as its endpoint: the
        same device registered again updates its row."""
        if registration.endpoint or registration.p256dh or registration.auth:
            raise InvalidArgument(
                "INVALID_TARGET",
                "give either push_subscription (Web Push) or apns_device (legacy Safari), "
                "not both",
                field="push_subscription",
            )
        if registration.browser not in (None, Browser.SAFARI_LEGACY):
            raise InvalidArgument(
                "INVALID_BROWSER",
                "an apns_device is a legacy Safari device: browser must be "
                "BROWSER_SAFARI_LEGACY (or unspecified)",
                field="browser",
            )
        if registration.vapid_key_id:
            raise InvalidArgument(
                "INVALID_VAPID_KEY_ID",
                "a legacy Safari device is reached over APNs and has no VAPID key: leave "
                "vapid_key_id empty",
                field="vapid_key_id",
            )
        return NewSubscription(
            endpoint=validate_device_token(registration.apns_device_token),
            p256dh=b"",
            auth=b"",
            browser=Browser.SAFARI_LEGACY,
            timezone=validate_timezone(registration.timezone),
            profile_id=validate_profile_id(registration.profile_id),
            vapid_key_id=None,
            apns_topic=validate_apns_topic(registration.apns_topic),
        )

    async def register(self, site_id: str, registration: Registration) -> tuple[Subscriber, bool]:
        subscription = self._validated(registration)
        subscriber, created = await self._store.upsert(
            site_id, new_id(SUBSCRIBER_ID_PREFIX), subscription, self._clock.now()
        )
        log.info(
            "subscriber registered" if created else "subscriber re-registered",
            subscriber_id=subscriber.subscriber_id,
        )
        return subscriber, created

    async def unsubscribe(
        self,
        site_id: str,
        subscriber_id: str,
        reason: str,
        *,
        device_token: str = "",
        apns_topic: str = "",
    ) -> Subscriber:
        """Unsubscribes `subscriber_id`, or (legacy Safari, when `device_token` is given
        instead) the site's device with that token, registered under `apns_topic` when
        one is given."""
        if device_token or apns_topic:
            if subscriber_id:
                raise InvalidArgument(
                    "INVALID_TARGET",
                    "name the subscriber by subscriber_id or by apns_device, not both",
                    field="apns_device",
                )
            validate_device_token(device_token)
            if apns_topic:
                validate_apns_topic(apns_topic)
            found = await self._store.subscriber_id_of_device(
                site_id, device_token, apns_topic or None
            )
            if found is None:
                raise NotFound(
                    "SUBSCRIBER_NOT_FOUND",
                    "no legacy Safari device with this device token in this site"
                    + (f" under Website Push ID {apns_topic!r}" if apns_topic else ""),
                    field="apns_device.device_token",
                )
            subscriber_id = found
        _require_subscriber_id(subscriber_id)
        reason = reason or DEFAULT_UNSUBSCRIBE_REASON
        if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
            raise InvalidArgument(
                "INVALID_REASON",
                f"reason must be at most {MAX_REASON_LENGTH} printable characters, "
                "e.g. 'push_service_410'",
                field="reason",
            )
        subscriber = await self._store.unsubscribe(
            site_id, subscriber_id, reason, self._clock.now()
        )
        if subscriber is None:
            raise _not_found(subscriber_id)
        log.info(
            "subscriber unsubscribed",
            subscriber_id=subscriber_id,
            unsubscribe_reason=subscriber.unsubscribe_reason,
        )
        return subscriber

    async def get(self, site_id: str, subscriber_id: str) -> Subscriber:
        _require_subscriber_id(subscriber_id)
        subscriber = await self._store.get(site_id, subscriber_id)
        if subscriber is None:
            raise _not_found(subscriber_id)
        return subscriber

    async def list_page(self, site_id: str, page_size: int, page_token: str) -> SubscriberPage:
        size = bounded_page_size(
            page_size, default=DEFAULT_LIST_PAGE_SIZE, maximum=MAX_LIST_PAGE_SIZE
        )
        after = decode_page_token(page_token, valid=_SUBSCRIBER_ID.fullmatch)
        # One row more than asked tells whether another page follows, so the last
        # page already carries an empty token.
        rows = await self._store.page(site_id, after=after, limit=size + 1)
        page, more = rows[:size], len(rows) > size
        return SubscriberPage(
            subscribers=page,
            next_page_token=encode_page_token(page[-1].subscriber_id) if more else "",
        )

    async def register_many(
        self, site_id: str, registrations: Sequence[Registration]
    ) -> list[tuple[Subscriber, bool]]:
        """Registers every entry as `register` would, in one transaction, or none of them:
        the first invalid entry refuses the batch. Results are in the entries' order.

        An endpoint given twice ends as if registered twice in a row: the later entry's
        details are stored, and only the first can have created the subscriber.
        """
        _require_batch_size(len(registrations), MAX_BATCH_REGISTRATIONS, "requests")
        subscriptions: list[NewSubscription] = []
        for index, registration in enumerate(registrations):
            try:
                subscriptions.append(self._validated(registration))
            except InvalidArgument as error:
                raise error_within(f"requests[{index}]", error) from None
        latest = {subscription.endpoint: subscription for subscription in subscriptions}
        offered = {endpoint: new_id(SUBSCRIBER_ID_PREFIX) for endpoint in latest}
        stored = await self._store.upsert_many(
            site_id,
            [(offered[endpoint], subscription) for endpoint, subscription in latest.items()],
            self._clock.now(),
        )
        results: list[tuple[Subscriber, bool]] = []
        seen: set[str] = set()
        for subscription in subscriptions:
            subscriber = stored[subscription.endpoint]
            created = (
                subscription.endpoint not in seen
                and subscriber.subscriber_id == offered[subscription.endpoint]
            )
            seen.add(subscription.endpoint)
            results.append((subscriber, created))
        log.info(
            "subscribers registered in a batch",
            entries=len(results),
            created=sum(created for _, created in results),
        )
        return results

    async def audience_page(
        self,
        site_id: str,
        snapshot_time: datetime | None,
        subscriber_ids: Sequence[str],
        page_size: int,
        page_token: str,
        kept_audience_key: str | None = None,
        profile_ids: Sequence[str] = (),
        profile_properties: Sequence[str] = (),
    ) -> AudiencePage:
        """One page of the site's audience as it stood at `snapshot_time`: subscribers
        created by then and not unsubscribed by then. Ones unsubscribed since are still
        members, marked unsubscribed. `subscriber_ids` and `profile_ids` narrow it to
        the listed subscribers and every subscriber of the listed profiles, each once (a
        test or transactional send); `kept_audience_key` reads a segment's audience kept
        for a run instead (reach.Audiences.keep_for_run). `profile_properties` names
        properties of the members' profiles to read with the page, as they are now."""
        if snapshot_time is None:
            raise InvalidArgument(
                "MISSING_SNAPSHOT_TIME",
                "snapshot_time is required: the moment the run's audience is taken at",
                field="snapshot_time",
            )
        _require_batch_size(len(subscriber_ids), MAX_SUBSCRIBER_IDS, "subscriber_ids")
        _require_batch_size(len(profile_ids), MAX_PROFILE_IDS, "profile_ids")
        _require_batch_size(
            len(profile_properties), MAX_AUDIENCE_PROPERTY_NAMES, "profile_properties"
        )
        for index, profile_id in enumerate(profile_ids):
            _require_listed_profile_id(profile_id, f"profile_ids[{index}]")
        size = bounded_page_size(
            page_size, default=DEFAULT_AUDIENCE_PAGE_SIZE, maximum=MAX_AUDIENCE_PAGE_SIZE
        )
        after = decode_page_token(page_token, valid=_SUBSCRIBER_ID.fullmatch)
        if kept_audience_key is not None:
            rows = await self._store.kept_audience_page(
                site_id, kept_audience_key, after=after, limit=size + 1
            )
        else:
            listed = bool(subscriber_ids or profile_ids)
            rows = await self._store.audience_page(
                site_id,
                snapshot_time,
                only=list(dict.fromkeys(subscriber_ids)) if listed else None,
                only_profiles=list(dict.fromkeys(profile_ids)),
                after=after,
                limit=size + 1,
            )
        page, more = rows[:size], len(rows) > size
        return AudiencePage(
            members=page,
            next_page_token=encode_page_token(page[-1].subscriber_id) if more else "",
            profile_properties=(
                await self._profile_properties(site_id, page, profile_properties)
                if profile_properties
                else {}
            ),
        )

    async def _profile_properties(
        self, site_id: str, members: Sequence[AudienceEntry], names: Sequence[str]
    ) -> dict[str, tuple[tuple[str, TypedValue], ...]]:
        """The named properties of the members' profiles, typed, read in one query for
        the page. A name no property can have (not a valid property name) is never
        found, so it is not asked for."""
        wanted = [name for name in dict.fromkeys(names) if _PROPERTY_NAME.fullmatch(name)]
        profile_ids = sorted({m.profile_id for m in members if m.profile_id})
        if not wanted or not profile_ids:
            return {}
        stored = await self._store.profile_properties(site_id, profile_ids, wanted)
        found = {name for values in stored.values() for name in values}
        types = await self._store.property_types(
            site_id, [(PROFILE_SCOPE, name) for name in found]
        )
        typed: dict[str, tuple[tuple[str, TypedValue], ...]] = {}
        for profile_id, values in stored.items():
            properties = []
            for name in wanted:
                if name in values:
                    value = from_json(types.get((PROFILE_SCOPE, name)), values[name])
                    if value is not None:
                        properties.append((name, value))
            if properties:
                typed[profile_id] = tuple(properties)
        return typed

    async def inactive_among(self, site_id: str, subscriber_ids: Sequence[str]) -> list[str]:
        """The given ids (in their order, each once) that are not active subscribers of
        the site: unsubscribed, or unknown here."""
        _require_batch_size(len(subscriber_ids), MAX_SUBSCRIBER_IDS, "subscriber_ids")
        unique = list(dict.fromkeys(subscriber_ids))
        active = await self._store.active_among(site_id, unique)
        return [subscriber_id for subscriber_id in unique if subscriber_id not in active]

    async def unsubscribe_many(
        self, site_id: str, unsubscriptions: Sequence[Unsubscription]
    ) -> int:
        """Unsubscribes the listed subscribers, all in one transaction; returns how many
        were newly unsubscribed. Unknown ids are skipped; a subscriber already
        unsubscribed keeps its first reason, and so does one listed twice."""
        _require_batch_size(len(unsubscriptions), MAX_BATCH_UNSUBSCRIPTIONS, "unsubscriptions")
        reasons: dict[str, str] = {}
        for index, unsubscription in enumerate(unsubscriptions):
            prefix = f"unsubscriptions[{index}]"
            _require_subscriber_id(unsubscription.subscriber_id, f"{prefix}.subscriber_id")
            if unsubscription.reason is None:
                raise InvalidArgument(
                    "INVALID_REASON",
                    f"{prefix}.reason is not a DeliveryReason this service knows",
                    field=f"{prefix}.reason",
                )
            if not unsubscription.reason:
                raise InvalidArgument(
                    "MISSING_REASON",
                    f"{prefix}.reason is required, e.g. DELIVERY_REASON_PUSH_SERVICE_410",
                    field=f"{prefix}.reason",
                )
            reasons.setdefault(unsubscription.subscriber_id, unsubscription.reason)
        unsubscribed = await self._store.unsubscribe_many(site_id, reasons, self._clock.now())
        log.info(
            "subscribers unsubscribed in a batch", entries=len(reasons), unsubscribed=unsubscribed
        )
        return unsubscribed


# --- Profiles and events --------------------------------------------------------------

MAX_PROFILE_UPDATES = 1000
MAX_EVENTS = 10000
MAX_PROPERTIES = 100
MAX_LIST_ITEMS = 100
MAX_STRING_VALUE_LENGTH = 1024
# An event may be stamped at most this far ahead of the server's clock (clock skew).
MAX_EVENT_FUTURE = timedelta(days=1)
RESERVED_EVENT_ID_PREFIX = "clarion:"
_PROPERTY_NAME = re.compile(rf"[A-Za-z0-9_ .\-]{{1,{MAX_PROPERTY_NAME_LENGTH}}}")


class TypedValue(NamedTuple):
    """A property value as the adapter hands it over: str, float, bool, datetime (UTC),
    or a tuple of str."""

    type: PropertyType
    value: Any


@dataclass(frozen=True)
class Operation:
    """One change of a ProfileUpdate: kind is set, unset, increment, append, or "" when
    the caller named none."""

    name: str
    kind: str
    value: TypedValue | None = None


@dataclass(frozen=True)
class ProfileChange:
    profile_id: str
    operations: tuple[Operation, ...]
    test_profile: bool | None


class NewEvent(NamedTuple):
    # Tuples: an event batch builds thousands, and a frozen dataclass's __init__ cost
    # three times a tuple's.
    event_id: str
    name: str
    profile_id: str
    subscriber_id: str
    occur_time: datetime | None
    properties: tuple[tuple[str, TypedValue | None], ...]


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item of a batch: ok (and for events whether it was already
    stored), or refused with a reason, the field within the item and a message."""

    ok: bool
    duplicate: bool = False
    reason: str = ""
    field: str = ""
    message: str = ""


_OK = ItemResult(ok=True)
_DUPLICATE = ItemResult(ok=True, duplicate=True)


class _Refused(Exception):
    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.result = ItemResult(ok=False, reason=reason, field=field, message=message)


def to_json(value: TypedValue) -> Any:
    """How a value is stored: timestamps as ISO-8601 text in UTC, lists as lists."""
    if value.type is PropertyType.TIMESTAMP:
        return value.value.astimezone(UTC).isoformat()
    if value.type is PropertyType.STRING_LIST:
        return list(value.value)
    if value.type is PropertyType.NUMBER:
        return float(value.value)
    return value.value


def from_json(type_name: str | None, stored: Any) -> TypedValue | None:
    """A stored value back with its type; None when the type is unknown."""
    try:
        type_ = PropertyType(type_name or "")
    except ValueError:
        return None
    if type_ is PropertyType.TIMESTAMP:
        return TypedValue(type_, datetime.fromisoformat(stored))
    if type_ is PropertyType.STRING_LIST:
        return TypedValue(type_, tuple(stored))
    if type_ is PropertyType.NUMBER:
        return TypedValue(type_, float(stored))
    return TypedValue(type_, stored)


def _check_name(name: str, field: str) -> None:
    if not _PROPERTY_NAME.fullmatch(name):
        raise _Refused(
            "INVALID_PROPERTY_NAME",
            field,
            f"{field} must be 1 to {MAX_PROPERTY_NAME_LENGTH} characters of letters, digits, "
            f"space, '_', '.' and '-', got {name[:80]!r}",
        )


def _check_value(value: TypedValue | None, field: str) -> TypedValue:
    if value is None:
        raise _Refused("MISSING_VALUE", field, f"{field} needs a value (one of its kinds)")
    if value.type is PropertyType.STRING and len(value.value) > MAX_STRING_VALUE_LENGTH:
        raise _Refused(
            "VALUE_TOO_LONG", field, f"{field} must be at most {MAX_STRING_VALUE_LENGTH} characters"
        )
    if value.type is PropertyType.STRING_LIST and len(value.value) > MAX_LIST_ITEMS:
        raise _Refused(
            "LIST_TOO_LONG", field, f"{field} must have at most {MAX_LIST_ITEMS} items"
        )
    if value.type is PropertyType.NUMBER and not math.isfinite(value.value):
        raise _Refused("INVALID_NUMBER", field, f"{field} must be a finite number")
    return value


def _check_type(
    types: dict[str, str], name: str, type_: PropertyType, field: str, what: str
) -> None:
    """Fixes the name's type on first use; refuses a value of another type."""
    known = types.setdefault(name, type_.value)
    if known != type_.value:
        raise _Refused(
            "PROPERTY_TYPE_MISMATCH",
            field,
            f"{what} {name!r} is a {known} in this site (fixed by its first use); "
            f"{field} is a {type_.value}",
        )


def _apply_operation(
    properties: dict[str, Any], types: dict[str, str], operation: Operation, field: str
) -> None:
    _check_name(operation.name, f"{field}.name")
    name = operation.name
    what = "profile property"
    if operation.kind == "set":
        value = _check_value(operation.value, f"{field}.set")
        _check_type(types, name, value.type, f"{field}.set", what)
        properties[name] = to_json(value)
    elif operation.kind == "unset":
        properties.pop(name, None)
    elif operation.kind == "increment":
        amount = _check_value(operation.value, f"{field}.increment")
        _check_type(types, name, PropertyType.NUMBER, f"{field}.increment", what)
        total = float(properties.get(name, 0.0)) + amount.value
        if not math.isfinite(total):
            raise _Refused(
                "INVALID_NUMBER", f"{field}.increment", f"{field}.increment overflows {name!r}"
            )
        properties[name] = total
    elif operation.kind == "append":
        items = _check_value(operation.value, f"{field}.append")
        _check_type(types, name, PropertyType.STRING_LIST, f"{field}.append", what)
        combined = [*properties.get(name, []), *items.value]
        if len(combined) > MAX_LIST_ITEMS:
            raise _Refused(
                "LIST_TOO_LONG",
                f"{field}.append",
                f"{name!r} would have {len(combined)} items; a list has at most {MAX_LIST_ITEMS}",
            )
        properties[name] = combined
    else:
        raise _Refused(
            "MISSING_OPERATION",
            field,
            f"{field} needs one of set, unset (true), increment or append",
        )


def _result_of(error: InvalidArgument) -> ItemResult:
    return ItemResult(
        ok=False, reason=error.reason, field=error.metadata.get("field", ""), message=error.message
    )


class Audience:
    """Use cases of profiles and events (UpsertProfiles, GetProfile, TrackEvents,
    Identify) over the segment store."""

    def __init__(self, store: SubscriberStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def upsert_profiles(
        self, site_id: str, changes: Sequence[ProfileChange]
    ) -> list[ItemResult]:
        """Applies each change whole or not at all; the results are at the changes'
        indexes. Changes are applied in order (two to one profile compose)."""
        _require_batch_size(len(changes), MAX_PROFILE_UPDATES, "updates")
        results: list[ItemResult | None] = [None] * len(changes)
        valid: list[int] = []
        for index, change in enumerate(changes):
            try:
                if not change.profile_id:
                    raise _Refused("MISSING_PROFILE_ID", "profile_id", "profile_id is required")
                validate_profile_id(change.profile_id)
                valid.append(index)
            except _Refused as refused:
                results[index] = refused.result
            except InvalidArgument as error:
                results[index] = _result_of(error)
        if not valid:
            return [r or _OK for r in results]

        def plan(known: dict[str, str], current: dict[str, ProfileState]) -> ProfilePlan:
            types = dict(known)
            profiles = dict(current)
            touched: set[str] = set()
            for index in valid:
                change = changes[index]
                state = profiles[change.profile_id]
                properties = dict(state.properties)
                item_types = dict(types)
                try:
                    for position, operation in enumerate(change.operations):
                        _apply_operation(
                            properties, item_types, operation, f"operations[{position}]"
                        )
                    if len(properties) > MAX_PROPERTIES:
                        raise _Refused(
                            "TOO_MANY_PROPERTIES",
                            "operations",
                            f"the profile would have {len(properties)} properties; "
                            f"at most {MAX_PROPERTIES}",
                        )
                except _Refused as refused:
                    results[index] = refused.result
                    continue
                types = item_types
                profiles[change.profile_id] = ProfileState(
                    properties,
                    state.test_profile if change.test_profile is None else change.test_profile,
                    state.exists,
                )
                touched.add(change.profile_id)
                results[index] = _OK
            return ProfilePlan(
                profiles={profile_id: profiles[profile_id] for profile_id in touched},
                new_types={name: t for name, t in types.items() if name not in known},
            )

        names = {
            operation.name
            for index in valid
            for operation in changes[index].operations
            if _PROPERTY_NAME.fullmatch(operation.name)
        }
        await self._store.apply_profile_updates(
            site_id, {changes[i].profile_id for i in valid}, names, plan, self._clock.now()
        )
        log.info(
            "profiles upserted",
            updates=len(changes),
            refused=sum(1 for r in results if r is not None and not r.ok),
        )
        return [r or _OK for r in results]

    async def get_profile(self, site_id: str, profile_id: str) -> StoredProfile:
        if not profile_id:
            raise InvalidArgument(
                "MISSING_PROFILE_ID", "profile_id is required", field="profile_id"
            )
        validate_profile_id(profile_id)
        profile = await self._store.get_profile(site_id, profile_id)
        if profile is None:
            raise NotFound(
                "PROFILE_NOT_FOUND",
                f"no profile {profile_id[:80]!r} in this site",
                field="profile_id",
            )
        return profile

    def _validated_event(self, event: NewEvent, now: datetime, system: bool) -> None:
        if not event.event_id:
            raise _Refused("MISSING_EVENT_ID", "event_id", "event_id is required (idempotency)")
        # A site's events never have Clarion's ids; Clarion's own (system) always do.
        if event.event_id.startswith(RESERVED_EVENT_ID_PREFIX) != system:
            raise _Refused(
                "RESERVED_EVENT_ID",
                "event_id",
                f"event ids starting with {RESERVED_EVENT_ID_PREFIX!r} are Clarion's own"
                if not system
                else f"a system event's id must start with {RESERVED_EVENT_ID_PREFIX!r}",
            )
        if not event.name or not event.name.isprintable():
            raise _Refused(
                "MISSING_EVENT_NAME", "name", "name is required, one line, e.g. 'Purchase'"
            )
        if not event.profile_id and not event.subscriber_id:
            raise _Refused(
                "MISSING_PROFILE_OR_SUBSCRIBER",
                "profile_id",
                "an event needs a profile_id, a subscriber_id, or both",
            )
        if event.profile_id:
            try:
                validate_profile_id(event.profile_id)
            except InvalidArgument as error:
                raise _Refused(error.reason, "profile_id", error.message) from None
        if event.occur_time is None:
            raise _Refused("MISSING_OCCUR_TIME", "occur_time", "occur_time is required")
        if event.occur_time > now + MAX_EVENT_FUTURE:
            raise _Refused(
                "EVENT_IN_FUTURE",
                "occur_time",
                f"occur_time {event.occur_time.isoformat()} is more than a day ahead of "
                f"the server's clock ({now.isoformat()})",
            )
        if len(event.properties) > MAX_PROPERTIES:
            raise _Refused(
                "TOO_MANY_PROPERTIES", "properties", f"at most {MAX_PROPERTIES} properties"
            )
        seen: set[str] = set()
        for position, (name, value) in enumerate(event.properties):
            field = f"properties[{position}]"
            _check_name(name, f"{field}.name")
            if name in seen:
                raise _Refused(
                    "DUPLICATE_PROPERTY", f"{field}.name", f"property {name!r} is given twice"
                )
            seen.add(name)
            _check_value(value, f"{field}.value")

    async def track_events(
        self, site_id: str, events: Sequence[NewEvent], *, system: bool = False
    ) -> list[ItemResult]:
        """Stores the valid events in one transaction, each at most once per event id;
        the results are at the events' indexes. `system` events are Clarion's own (an
        internal caller's): their ids must start with RESERVED_EVENT_ID_PREFIX, which a
        site's never may."""
        _require_batch_size(len(events), MAX_EVENTS, "events")
        now = self._clock.now()
        results: list[ItemResult | None] = [None] * len(events)
        valid: list[int] = []
        for index, event in enumerate(events):
            try:
                self._validated_event(event, now, system)
                valid.append(index)
            except _Refused as refused:
                results[index] = refused.result
        if not valid:
            return [r or _OK for r in results]
        keys = {
            (event_scope(events[i].name), name) for i in valid for name, _ in events[i].properties
        }
        first_of: dict[str, int] = {}

        def plan(known: dict[tuple[str, str], str]) -> EventPlan:
            types = dict(known)
            rows: list[dict[str, Any]] = []
            for index in valid:
                event = events[index]
                scope = event_scope(event.name)
                # The types this event would fix first; the site's only if it is kept
                # (not a copy of all the site's types per event).
                fixed: dict[tuple[str, str], str] = {}
                properties: dict[str, Any] = {}
                try:
                    for position, (name, value) in enumerate(event.properties):
                        assert value is not None
                        key = (scope, name)
                        known_type = types.get(key) or fixed.setdefault(key, value.type.value)
                        if known_type != value.type.value:
                            field = f"properties[{position}].value"
                            raise _Refused(
                                "PROPERTY_TYPE_MISMATCH",
                                field,
                                f"property {name!r} of event {event.name!r} is a {known_type} "
                                f"in this site (fixed by its first use); {field} is a "
                                f"{value.type.value}",
                            )
                        properties[name] = to_json(value)
                except _Refused as refused:
                    results[index] = refused.result
                    continue
                if fixed:
                    types.update(fixed)
                if event.event_id in first_of:
                    results[index] = _DUPLICATE
                    continue
                first_of[event.event_id] = index
                rows.append(
                    {
                        "event_id": event.event_id,
                        "name": event.name,
                        "profile_id": event.profile_id or None,
                        "subscriber_id": event.subscriber_id or None,
                        "occur_time": event.occur_time,
                        "properties": properties,
                    }
                )
            return EventPlan(
                rows=rows, new_types={k: t for k, t in types.items() if k not in known}
            )

        _, stored = await self._store.track_events(site_id, keys, plan, now)
        for event_id, index in first_of.items():
            results[index] = _OK if event_id in stored else _DUPLICATE
        log.info(
            "events tracked",
            events=len(events),
            stored=len(stored),
            refused=sum(1 for r in results if r is not None and not r.ok),
        )
        return [r or _OK for r in results]

    async def identify(
        self, site_id: str, subscriber_id: str, profile_id: str
    ) -> tuple[StoredProfile, int]:
        _require_subscriber_id(subscriber_id)
        if not profile_id:
            raise InvalidArgument(
                "MISSING_PROFILE_ID", "profile_id is required", field="profile_id"
            )
        validate_profile_id(profile_id)
        identified = await self._store.identify(
            site_id, subscriber_id, profile_id, self._clock.now()
        )
        if identified is None:
            raise _not_found(subscriber_id)
        log.info("subscriber identified", subscriber_id=subscriber_id, events=identified[1])
        return identified
