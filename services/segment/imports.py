"""Imports and exports (ImportSubscribers / ImportProfiles / ImportEvents,
ExportAudience): a site moving its subscribers, profiles and events in from another
provider, and taking an audience out, in batches.

An import answers per row: stored (new or changed), unchanged (already there as given),
or rejected with the row number and why. A row is checked exactly as the unary RPC
would check it (RegisterSubscriber, UpsertProfiles, TrackEvents); a bad row is refused
alone, the batch's good rows are stored in one transaction, and a re-run of the same
file stores nothing twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.kit.clock import Clock
from services.kit.egress import EgressPolicy
from services.kit.errors import InvalidArgument
from services.kit.ids import new_ids
from services.kit.logging import get_logger
from services.segment.domain import (
    DEFAULT_TIMEZONE,
    MAX_EVENTS,
    MAX_PROFILE_UPDATES,
    SUBSCRIBER_ID_PREFIX,
    Audience,
    ItemResult,
    NewEvent,
    ProfileChange,
    validate_auth,
    validate_endpoint,
    validate_p256dh,
    validate_profile_id,
    validate_timezone,
    validate_vapid_key_id,
    validate_web_push_browser,
)
from services.segment.import_store import ImportStore, StoredSubscription
from services.segment.models import Browser, SubscriberState
from services.segment.reach import Audiences, Selector
from services.segment.store import StoredProfile, Subscriber, SubscriberStore
from services.segment.subscription_writes import SubscriptionWrite

log = get_logger(__name__)

MAX_IMPORTED_SUBSCRIBERS = 1000
MAX_IMPORTED_PROFILES = MAX_PROFILE_UPDATES
MAX_IMPORTED_EVENTS = MAX_EVENTS
# Rows an export reads per statement (keyset pages): memory stays bounded by this.
EXPORT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Rejection:
    row: int
    reason: str
    field: str
    message: str


@dataclass
class ImportResult:
    stored: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class SubscriberImportStream:
    """What one ImportSubscribers stream remembers between its batches: whether the
    last one was fresh, mostly new browsers and no change to one already there. A
    fresh import's batches are, and are written insert-first (nothing read for the new
    rows). After a batch that was not, the next is read first: a re-run of a file
    (after an interrupted import) would stage and probe rows that are all there (25 µs
    of CPU a row read first against 45 insert-first), and a batch changing rows
    already there is written read-first anyway (ImportStore.import_subscriptions), so
    trying insert-first on it first is lost work."""

    fresh: bool = True


@dataclass(slots=True)  # not frozen: a frozen init costs ~3 µs a row, slots 0.4
class ImportedSubscription:
    """One row of ImportSubscribers as the adapter hands it over, not yet validated.
    None (browser, create_time) and "" (timezone, profile_id, vapid_key_id) mean the
    row does not say: a new subscriber gets the default (OTHER, UTC, none, the site's
    current key, now), an existing one keeps what it has."""

    row: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser | None
    timezone: str
    profile_id: str
    vapid_key_id: str
    create_time: datetime | None


@dataclass(slots=True)  # not frozen: a frozen init costs ~3 µs a row, slots 0.4
class _Checked:
    row: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: str | None
    timezone: str | None
    profile_id: str | None
    vapid_key_id: str | None
    create_time: datetime


def rejection(row: int, error: InvalidArgument) -> Rejection:
    return Rejection(row, error.reason, error.metadata.get("field", ""), error.message)


def _item_rejection(row: int, result: ItemResult) -> Rejection:
    return Rejection(row, result.reason, result.field, result.message)


def _require_batch_size(size: int, maximum: int, field_name: str) -> None:
    if size > maximum:
        raise InvalidArgument(
            "BATCH_TOO_LARGE",
            f"{field_name} has {size} rows; send at most {maximum} per message",
            field=field_name,
        )


class Imports:
    def __init__(
        self,
        store: ImportStore,
        subscribers: SubscriberStore,
        audience: Audience,
        audiences: Audiences,
        clock: Clock,
        *,
        egress: EgressPolicy,
    ) -> None:
        self._store = store
        self._subscribers = subscribers
        self._audience = audience
        self._audiences = audiences
        self._clock = clock
        self._egress = egress

    def _checked(self, row: ImportedSubscription, now: datetime) -> _Checked:
        """RegisterSubscriber's checks, plus the VAPID key id and create time."""
        if row.create_time is not None and row.create_time > now:
            raise InvalidArgument(
                "CREATE_TIME_IN_FUTURE",
                f"create_time {row.create_time.isoformat()} is after the server's clock "
                f"({now.isoformat()}): when the browser subscribed, in the past",
                field="create_time",
            )
        return _Checked(
            row=row.row,
            endpoint=validate_endpoint(row.endpoint, policy=self._egress),
            p256dh=validate_p256dh(row.p256dh),
            auth=validate_auth(row.auth),
            browser=(
                validate_web_push_browser(row.browser).value  # type: ignore[union-attr]
                if row.browser is not None
                else None
            ),
            timezone=validate_timezone(row.timezone) if row.timezone else None,
            profile_id=validate_profile_id(row.profile_id),
            vapid_key_id=validate_vapid_key_id(row.vapid_key_id),
            create_time=row.create_time or now,
        )

    async def import_subscribers(
        self,
        site_id: str,
        rows: Sequence[ImportedSubscription],
        stream: SubscriberImportStream | None = None,
    ) -> ImportResult:
        """One batch: each valid row is upserted by (site, endpoint). A row that gives
        what the site already has for its endpoint is unchanged (nothing is written);
        another is stored. New keys make an unsubscribed endpoint active again (a new
        subscription); other changes keep its state. A second row of the batch with an
        endpoint already in it is rejected (DUPLICATE_ENDPOINT)."""
        _require_batch_size(len(rows), MAX_IMPORTED_SUBSCRIBERS, "subscribers")
        now = self._clock.now()
        result = ImportResult()
        checked: dict[str, _Checked] = {}
        for row in rows:
            try:
                entry = self._checked(row, now)
            except InvalidArgument as error:
                result.rejected.append(rejection(row.row, error))
                continue
            first = checked.get(entry.endpoint)
            if first is not None:
                result.rejected.append(
                    Rejection(
                        row.row,
                        "DUPLICATE_ENDPOINT",
                        "push_subscription.endpoint",
                        f"this endpoint is already imported by row {first.row} of this batch",
                    )
                )
                continue
            checked[entry.endpoint] = entry
        # Each row offered as a new subscriber; the store asks `merge` what to write for
        # the endpoints the site already has.
        as_new = {
            endpoint: _new_write(entry, subscriber_id)
            for (endpoint, entry), subscriber_id in zip(
                checked.items(), new_ids(SUBSCRIBER_ID_PREFIX, len(checked)), strict=True
            )
        }

        def merge(
            endpoints: Sequence[str], stored: Mapping[str, StoredSubscription]
        ) -> list[SubscriptionWrite]:
            writes = []
            for endpoint in endpoints:
                found = stored.get(endpoint)
                write = (
                    as_new[endpoint]
                    if found is None
                    else _changed_write(checked[endpoint], found)
                )
                if write is not None:
                    writes.append(write)
            return writes

        written = await self._store.import_subscriptions(
            site_id, list(as_new.values()), merge, now,
            insert_first=stream is None or stream.fresh,
        )  # fmt: skip
        if stream is not None and checked:
            stream.fresh = (
                2 * written.created >= len(checked) and written.written == written.created
            )
        result.stored, result.unchanged = written.written, written.unchanged
        result.rejected.sort(key=lambda r: r.row)
        log.info(
            "subscribers imported",
            rows=len(rows),
            created=written.created,
            stored=result.stored,
            unchanged=result.unchanged,
            rejected=len(result.rejected),
        )
        return result

    async def import_profiles(
        self, site_id: str, rows: Sequence[tuple[int, ProfileChange]]
    ) -> ImportResult:
        """One batch of profile updates, as UpsertProfiles; a row whose profile ends as
        it started (same properties and test flag) counts as unchanged."""
        _require_batch_size(len(rows), MAX_IMPORTED_PROFILES, "profiles")
        ids = sorted({change.profile_id for _, change in rows if change.profile_id})
        before = await self._store.profile_states(site_id, ids)
        results = await self._audience.upsert_profiles(site_id, [change for _, change in rows])
        after = await self._store.profile_states(site_id, ids)
        result = ImportResult()
        for (row, change), item in zip(rows, results, strict=True):
            if not item.ok:
                result.rejected.append(_item_rejection(row, item))
            elif change.profile_id in before and before[change.profile_id] == after.get(
                change.profile_id
            ):
                result.unchanged += 1
            else:
                result.stored += 1
        return result

    async def import_events(
        self, site_id: str, rows: Sequence[tuple[int, NewEvent]]
    ) -> ImportResult:
        """One batch of events, as TrackEvents: an event id stored before (or earlier in
        the batch) is unchanged."""
        _require_batch_size(len(rows), MAX_IMPORTED_EVENTS, "events")
        results = await self._audience.track_events(site_id, [event for _, event in rows])
        result = ImportResult()
        for (row, _), item in zip(rows, results, strict=True):
            if not item.ok:
                result.rejected.append(_item_rejection(row, item))
            elif item.duplicate:
                result.unchanged += 1
            else:
                result.stored += 1
        return result

    async def export_subscribers(
        self, site_id: str, selector: Selector, *, include_unsubscribed: bool
    ) -> AsyncIterator[list[tuple[Subscriber, str | None]]]:
        """Pages of the subscribers the audience selects now (active ones unless
        include_unsubscribed), in id order; the audience is evaluated as of the start."""
        condition = await self._audiences.definition_of(site_id, selector)
        now = self._clock.now()
        types = await self._subscribers.property_types(site_id)
        after: str | None = None
        while True:
            page = await self._store.subscribers_page(
                site_id, condition, now, types,
                include_unsubscribed=include_unsubscribed, after=after, limit=EXPORT_PAGE_SIZE,
            )  # fmt: skip
            if page:
                yield page
            if len(page) < EXPORT_PAGE_SIZE:
                return
            after = page[-1][0].subscriber_id

    async def export_profiles(
        self, site_id: str, selector: Selector
    ) -> AsyncIterator[list[StoredProfile]]:
        """Pages of the profiles the audience selects now, in profile id order."""
        condition = await self._audiences.definition_of(site_id, selector)
        now = self._clock.now()
        types = await self._subscribers.property_types(site_id)
        after: str | None = None
        while True:
            page = await self._store.profiles_page(
                site_id, condition, now, types, after=after, limit=EXPORT_PAGE_SIZE
            )
            if page:
                yield page
            if len(page) < EXPORT_PAGE_SIZE:
                return
            after = page[-1].profile_id


def _new_write(entry: _Checked, subscriber_id: str) -> SubscriptionWrite:
    """A checked row as a new subscriber with this id."""
    return SubscriptionWrite(
        subscriber_id=subscriber_id,
        endpoint=entry.endpoint,
        p256dh=entry.p256dh,
        auth=entry.auth,
        browser=entry.browser or Browser.OTHER.value,
        timezone=entry.timezone or DEFAULT_TIMEZONE,
        profile_id=entry.profile_id,
        vapid_key_id=entry.vapid_key_id,
        state=SubscriberState.ACTIVE.value,
        unsubscribe_reason=None,
        unsubscribe_time=None,
        create_time=entry.create_time,
        new=True,
    )


def _changed_write(entry: _Checked, stored: StoredSubscription) -> SubscriptionWrite | None:
    """What to write for a checked row whose endpoint the site has (None: nothing)."""
    wanted: dict[str, Any] = {
        "p256dh": entry.p256dh,
        "auth": entry.auth,
        "browser": entry.browser or stored.browser,
        "timezone": entry.timezone or stored.timezone,
        "profile_id": entry.profile_id or stored.profile_id,
        "vapid_key_id": entry.vapid_key_id or stored.vapid_key_id,
    }
    if all(getattr(stored, name) == value for name, value in wanted.items()):
        return None
    renewed = (stored.p256dh, stored.auth) != (entry.p256dh, entry.auth)
    return SubscriptionWrite(
        subscriber_id=stored.subscriber_id,
        endpoint=entry.endpoint,
        state=SubscriberState.ACTIVE.value if renewed else stored.state,
        unsubscribe_reason=None if renewed else stored.unsubscribe_reason,
        unsubscribe_time=None if renewed else stored.unsubscribe_time,
        create_time=entry.create_time,
        new=False,
        **wanted,
    )
