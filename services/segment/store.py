"""Persistence of subscribers: the only module of the segment service that speaks SQL.

Every function takes the caller's site id and filters on it, so a row of another site
is never read or changed. Bulk paths (batch registration, audience pages, batch
unsubscribes) run statements built once per store and plain Core rows, never a
statement per row or ORM objects per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import orjson
from cachetools import LRUCache
from sqlalchemy import (
    JSON,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import UTCDateTime, session_factory
from services.kit.errors import Aborted
from services.segment.definition import Condition
from services.segment.models import (
    PROFILE_SCOPE,
    Browser,
    EventRow,
    KeptAudienceMemberRow,
    KeptAudienceRow,
    ProfileRow,
    PropertyType,
    PropertyTypeRow,
    SubscriberRow,
    SubscriberState,
)
from services.segment.segment_sql import (
    Clock,
    Person,
    SegmentCompiler,
    clock_values,
    type_keys,
)
from services.segment.subscription_writes import SubscriptionWrite, write_subscriptions

_TABLE = cast(Table, SubscriberRow.__table__)
_COLUMNS = _TABLE.c
_PROFILES = cast(Table, ProfileRow.__table__)
_TYPES = cast(Table, PropertyTypeRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_KEPT = cast(Table, KeptAudienceRow.__table__)
_KEPT_MEMBERS = cast(Table, KeptAudienceMemberRow.__table__)
# What a send needs of an audience member, in _to_audience_entry's order; a member
# unsubscribed since the snapshot is flagged (it was in the audience then).
_AUDIENCE_COLUMNS = (
    _COLUMNS.subscriber_id,
    _COLUMNS.endpoint,
    _COLUMNS.p256dh,
    _COLUMNS.auth,
    _COLUMNS.browser,
    _COLUMNS.timezone,
    _COLUMNS.profile_id,
    _COLUMNS.unsubscribe_time.is_not(None).label("unsubscribed"),
    _COLUMNS.vapid_key_id,
    _COLUMNS.apns_topic,
)
# For this transaction: a keyset page is read along its index, never bitmap-scanned and sorted.
_ORDERED_WALK = text(
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)"
)
# A run reads its kept audience within hours; a month covers any run's retries.
KEPT_AUDIENCE_DAYS = 30

UNSUBSCRIBED_EVENT = "Unsubscribed"


@dataclass(frozen=True)
class Subscriber:
    subscriber_id: str
    site_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None
    state: SubscriberState
    unsubscribe_reason: str | None
    create_time: datetime
    update_time: datetime
    # The site's VAPID key (campaign's vk_ id) it subscribed under; None: the current key.
    vapid_key_id: str | None = None
    # Legacy Safari: the Website Push ID it registered under (`endpoint` is then its
    # APNs device token); None for a Web Push subscription.
    apns_topic: str | None = None


@dataclass(slots=True)  # not frozen: one a registration, and a frozen init is slow
class NewSubscription:
    """What RegisterSubscriber stores, already validated by the domain. A legacy Safari
    device: `endpoint` its device token, `apns_topic` set, empty keys."""

    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None
    vapid_key_id: str | None = None
    apns_topic: str | None = None


class AudienceEntry(NamedTuple):
    """One subscriber of a run's audience: where to send and whether it left since.

    A tuple, not a frozen dataclass: a page builds a thousand of them (7 µs each as a
    frozen dataclass, under 1 µs as a tuple)."""

    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None
    # Unsubscribed after the snapshot time (it was in the audience then).
    unsubscribed: bool
    # The VAPID key to sign with; None: the site's current key.
    vapid_key_id: str | None = None
    # Legacy Safari: the APNs topic (`endpoint` is the device token); None: Web Push.
    apns_topic: str | None = None


@dataclass(frozen=True)
class ReachCounts:
    """Who a definition selects: people (profiles and anonymous subscribers), their
    active subscriptions, and those by browser."""

    people: int
    reachable: int
    by_browser: dict[Browser, int]
    # The sum over the people of (their active subscriptions)^2: the variance of an
    # estimate from a sample of people (reach.Audiences.estimate).
    reachable_squares: int = 0


@dataclass(frozen=True)
class ProfileState:
    """A profile as an update starts from (an empty one when the site has none)."""

    properties: dict[str, Any]
    test_profile: bool
    exists: bool


@dataclass(frozen=True)
class StoredProfile:
    profile_id: str
    # {name: JSON value}; `types` says what each one is.
    properties: dict[str, Any]
    types: dict[str, str]
    test_profile: bool
    subscriber_ids: list[str]
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class ProfilePlan:
    """What the domain decided for a batch of profile updates: the final state of each
    changed profile and the property types first used by the updates it accepted."""

    profiles: dict[str, ProfileState]
    new_types: dict[str, str]


@dataclass(frozen=True)
class EventPlan:
    """The events the domain accepted (rows of segment_events without site and receive
    time) and the (scope, name) property types they use first."""

    rows: list[dict[str, Any]]
    new_types: dict[tuple[str, str], str]


# A plan takes the site's known types and the current profiles, and decides.
ProfilePlanner = Callable[[dict[str, str], dict[str, ProfileState]], ProfilePlan]
EventPlanner = Callable[[dict[tuple[str, str], str]], EventPlan]


def _system_event(
    site_id: str, event_id: str, name: str, subscriber_id: str, profile_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "event_id": event_id,
        "name": name,
        "profile_id": profile_id,
        "subscriber_id": subscriber_id,
        "occur_time": now,
        "properties": {},
        "receive_time": now,
    }


def unsubscribed_event_id(subscriber_id: str, now: datetime) -> str:
    # The change is (subscriber, the moment it became unsubscribed): unsubscribing an
    # unsubscribed one changes nothing, and a later re-registration and unsubscribe is a
    # new change with a new id.
    return f"clarion:unsubscribed:{subscriber_id}:{int(now.timestamp() * 1_000_000)}"


def _insert_ignore(table: Table, postgresql_dialect: bool) -> Any:
    statement = (postgresql.insert(table) if postgresql_dialect else sqlite.insert(table))
    return statement.on_conflict_do_nothing()


def _to_subscriber(row: Any) -> Subscriber:
    return Subscriber(
        subscriber_id=row.subscriber_id,
        site_id=row.site_id,
        endpoint=row.endpoint,
        p256dh=bytes(row.p256dh),
        auth=bytes(row.auth),
        browser=Browser(row.browser),
        timezone=row.timezone,
        profile_id=row.profile_id,
        state=SubscriberState(row.state),
        unsubscribe_reason=row.unsubscribe_reason,
        create_time=row.create_time,
        update_time=row.update_time,
        vapid_key_id=row.vapid_key_id,
        apns_topic=row.apns_topic,
    )


# A batch of events travels as one JSON text (json_to_recordset), like
# subscription_writes.py's rows: one parameter whatever the batch size. Bound as a list
# of dicts, SQLAlchemy's per-row parameter processing cost more than the insert.
_POSTGRESQL_TRACK_EVENTS = text(
    "INSERT INTO segment_events (site_id, event_id, name, profile_id, subscriber_id, "
    "occur_time, properties, receive_time) "
    "SELECT :site_id, r.event_id, r.name, r.profile_id, r.subscriber_id, r.occur_time, "
    "coalesce(r.properties, '{}'::jsonb), :now FROM json_to_recordset(CAST(:rows AS json)) "
    "AS r(event_id varchar, name varchar, profile_id varchar, subscriber_id varchar, "
    "occur_time timestamptz, properties jsonb) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _json_events(rows: Sequence[Mapping[str, Any]]) -> str:
    # The rows as they are (the plan's keys are the columns); orjson writes their
    # aware datetimes as ISO 8601 with the offset. The standard library's encoder with
    # a `default` for the times was a sixth of the service's CPU per event.
    return orjson.dumps(rows).decode()


class SubscriberStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Delivery asks before every chunk it sends: the ids travel as one JSON text
        # (not one bound parameter each) and each is looked up in the index on its own
        # (LATERAL .. LIMIT 1): with fresh tables and no statistics a generic plan
        # otherwise reads every subscriber of the site (a hash join or a filter).
        if engine.dialect.name == "postgresql":
            self._active_among = text(
                "SELECT n.id FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) "
                "CROSS JOIN LATERAL (SELECT 1 FROM segment_subscribers AS s "
                "WHERE s.site_id = :site_id AND s.subscriber_id = n.id AND s.state = 'active' "
                "LIMIT 1) AS found"
            )
        else:
            self._active_among = text(
                "SELECT subscriber_id FROM segment_subscribers "
                "WHERE subscriber_id IN (SELECT value FROM json_each(:ids)) "
                "AND site_id = :site_id AND state = 'active'"
            )
        # The profile properties an audience page's templates read: each listed profile
        # looked up by its key. PostgreSQL keeps only the named properties (one pass
        # over each profile's JSONB, not one per name), so a page does not carry whole
        # profiles; SQLite reads the local row and the store picks them.
        if engine.dialect.name == "postgresql":
            self._profile_properties = text(
                "SELECT p.profile_id, (SELECT jsonb_object_agg(e.key, e.value) "
                "FROM jsonb_each(p.properties) AS e "
                "WHERE e.key IN (SELECT json_array_elements_text(CAST(:names AS json)))) "
                "AS properties "
                "FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) "
                "CROSS JOIN LATERAL (SELECT profile_id, properties FROM segment_profiles "
                "WHERE site_id = :site_id AND profile_id = n.id) AS p"
            ).columns(profile_id=String, properties=postgresql.JSONB)
        else:
            self._profile_properties = text(
                "SELECT profile_id, properties FROM segment_profiles "
                "WHERE site_id = :site_id AND profile_id IN (SELECT value FROM json_each(:ids))"
            ).columns(profile_id=String, properties=JSON)
        self._sessions = session_factory(engine)
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise RuntimeError(f"unsupported database dialect {dialect!r}")
        self._postgresql = dialect == "postgresql"
        self._insert_event = _insert_ignore(_EVENTS, self._postgresql)
        self._insert_type = _insert_ignore(_TYPES, self._postgresql)
        self._insert_profile = _insert_ignore(_PROFILES, self._postgresql)
        self._insert_kept = _insert_ignore(_KEPT, self._postgresql)
        # site_id -> its stored property types (property_types).
        self._types: LRUCache[str, dict[tuple[str, str], PropertyType]] = LRUCache(maxsize=4096)
        # (definition, kind of person, the types it reads) -> one person's match
        # statement and its moving times (see _one_person_statement).
        self._person_statements: LRUCache[Any, tuple[Select[Any], Clock]] = LRUCache(
            maxsize=1024
        )

    async def upsert(
        self, site_id: str, new_subscriber_id: str, subscription: NewSubscription, now: datetime
    ) -> tuple[Subscriber, bool]:
        """Inserts the subscription, or updates and re-activates the site's row with the
        same endpoint. Returns the stored subscriber and whether it was created."""
        stored = await self.upsert_many(site_id, [(new_subscriber_id, subscription)], now)
        subscriber = stored[subscription.endpoint]
        return subscriber, subscriber.subscriber_id == new_subscriber_id

    async def upsert_many(
        self,
        site_id: str,
        entries: Sequence[tuple[str, NewSubscription]],
        now: datetime,
    ) -> dict[str, Subscriber]:
        """Upserts (new subscriber id, subscription) pairs whose endpoints are distinct,
        in one transaction, as active subscriptions created now; returns the stored
        subscribers by endpoint. A subscriber was created exactly when its id is the new
        id it was offered. See subscription_writes.write_subscriptions.
        """
        if not entries:
            return {}
        writes = [
            SubscriptionWrite(
                subscriber_id=subscriber_id,
                endpoint=s.endpoint,
                p256dh=s.p256dh,
                auth=s.auth,
                browser=s.browser.value,
                timezone=s.timezone,
                profile_id=s.profile_id,
                vapid_key_id=s.vapid_key_id,
                state=SubscriberState.ACTIVE.value,
                unsubscribe_reason=None,
                unsubscribe_time=None,
                create_time=now,
                new=True,
                apns_topic=s.apns_topic,
            )
            for subscriber_id, s in entries
        ]
        async with self._engine.begin() as connection:
            rows, _ = await write_subscriptions(connection, site_id, writes, now)
        if len(rows) != len(entries):
            raise RuntimeError("upsert_many needs distinct endpoints")
        subscriptions = {s.endpoint: s for _, s in entries}
        stored = {}
        for subscriber_id, endpoint, create_time, *_ in rows:
            subscription = subscriptions[endpoint]
            stored[endpoint] = Subscriber(
                subscriber_id=subscriber_id,
                site_id=site_id,
                endpoint=endpoint,
                p256dh=subscription.p256dh,
                auth=subscription.auth,
                browser=subscription.browser,
                timezone=subscription.timezone,
                profile_id=subscription.profile_id,
                state=SubscriberState.ACTIVE,
                unsubscribe_reason=None,
                create_time=create_time,
                update_time=now,
                vapid_key_id=subscription.vapid_key_id,
                apns_topic=subscription.apns_topic,
            )
        return stored

    async def get(self, site_id: str, subscriber_id: str) -> Subscriber | None:
        async with self._sessions() as session:
            row = (await session.execute(_one_subscriber(site_id, subscriber_id))).first()
            return _to_subscriber(row) if row is not None else None

    async def unsubscribe(
        self, site_id: str, subscriber_id: str, reason: str, now: datetime
    ) -> Subscriber | None:
        """Marks an active subscriber unsubscribed; an unsubscribed one stays as it was
        (first reason and time win). None when the site has no such subscriber."""
        async with self._sessions.begin() as session:
            await self._unsubscribe_recorded(session, site_id, [subscriber_id], reason, now)
            row = (await session.execute(_one_subscriber(site_id, subscriber_id))).first()
            return _to_subscriber(row) if row is not None else None

    async def subscriber_id_of_device(
        self, site_id: str, device_token: str, apns_topic: str | None
    ) -> str | None:
        """The site's legacy Safari subscriber with this APNs device token (registered
        under `apns_topic`, when given); None when there is none."""
        conditions = [
            _COLUMNS.site_id == site_id,
            _COLUMNS.endpoint == device_token,
            _COLUMNS.apns_topic.is_not(None),
        ]
        if apns_topic is not None:
            conditions.append(_COLUMNS.apns_topic == apns_topic)
        async with self._sessions() as session:
            return await session.scalar(select(_COLUMNS.subscriber_id).where(and_(*conditions)))

    async def unsubscribe_many(
        self, site_id: str, reasons: Mapping[str, str], now: datetime
    ) -> int:
        """Unsubscribes the active ones of these subscribers, each with its reason, in one
        transaction; returns how many were newly unsubscribed. Unknown ids and ones
        already unsubscribed (their first reason wins) are left alone.

        One UPDATE .. WHERE subscriber_id IN (..) per distinct reason: a handful of
        statements however large the batch.
        """
        by_reason: dict[str, list[str]] = {}
        for subscriber_id, reason in reasons.items():
            by_reason.setdefault(reason, []).append(subscriber_id)
        unsubscribed = 0
        async with self._sessions.begin() as session:
            for reason, subscriber_ids in by_reason.items():
                unsubscribed += await self._unsubscribe_recorded(
                    session, site_id, subscriber_ids, reason, now
                )
        return unsubscribed

    async def _unsubscribe_recorded(
        self, session: Any, site_id: str, subscriber_ids: Sequence[str], reason: str,
        now: datetime,
    ) -> int:
        """Unsubscribes the active ones and records an Unsubscribed event for each, in
        the caller's transaction; returns how many changed."""
        result = await session.execute(
            _unsubscribe_statement(site_id, subscriber_ids, reason, now).returning(
                _COLUMNS.subscriber_id, _COLUMNS.profile_id
            )
        )
        changed = result.all()
        if changed:
            await session.execute(
                self._insert_event,
                [
                    _system_event(
                        site_id,
                        unsubscribed_event_id(subscriber_id, now),
                        UNSUBSCRIBED_EVENT,
                        subscriber_id,
                        profile_id,
                        now,
                    )
                    for subscriber_id, profile_id in changed
                ],
            )
        return len(changed)

    async def _known_types(
        self, session: Any, site_id: str, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        if not keys:
            return {}
        scopes = sorted({scope for scope, _ in keys})
        names = sorted({name for _, name in keys})
        rows = await session.execute(
            select(_TYPES.c.scope, _TYPES.c.name, _TYPES.c.type).where(
                _TYPES.c.site_id == site_id,
                _TYPES.c.scope.in_(scopes),
                _TYPES.c.name.in_(names),
            )
        )
        return {(scope, name): type_ for scope, name, type_ in rows}

    async def _fix_types(
        self, session: Any, site_id: str, new_types: Mapping[tuple[str, str], str],
        now: datetime,
    ) -> None:
        """Records the types first used by this transaction. Another transaction that
        fixed one of them to another type meanwhile wins: this one is aborted (retry)."""
        if not new_types:
            return
        await session.execute(
            self._insert_type,
            [
                {"site_id": site_id, "scope": scope, "name": name, "type": type_,
                 "create_time": now}
                for (scope, name), type_ in sorted(new_types.items())
            ],
        )
        stored = await self._known_types(session, site_id, list(new_types))
        for key, type_ in new_types.items():
            if stored.get(key) != type_:
                raise Aborted(
                    "CONCURRENT_TYPE_CHANGE",
                    f"property {key[1]!r} was given another type by a concurrent call; retry",
                    field="properties",
                )

    async def apply_profile_updates(
        self,
        site_id: str,
        profile_ids: Collection[str],
        property_names: Collection[str],
        planner: ProfilePlanner,
        now: datetime,
    ) -> ProfilePlan:
        """In one transaction: reads the site's types of these property names and these
        profiles (locked on PostgreSQL), lets `planner` decide, and stores its plan."""
        ids = sorted(set(profile_ids))
        async with self._sessions.begin() as session:
            known = await self._known_types(
                session, site_id, [(PROFILE_SCOPE, name) for name in property_names]
            )
            query = (
                select(_PROFILES.c.profile_id, _PROFILES.c.properties, _PROFILES.c.test_profile)
                .where(_PROFILES.c.site_id == site_id, _PROFILES.c.profile_id.in_(ids))
                .order_by(_PROFILES.c.profile_id)
            )
            if self._postgresql:
                query = query.with_for_update()
            current = {
                profile_id: ProfileState(dict(properties or {}), bool(test), True)
                for profile_id, properties, test in await session.execute(query)
            }
            for profile_id in ids:
                current.setdefault(profile_id, ProfileState({}, False, False))
            plan = planner({name: t for (_, name), t in known.items()}, current)
            await self._fix_types(
                session,
                site_id,
                {(PROFILE_SCOPE, name): t for name, t in plan.new_types.items()},
                now,
            )
            created = [
                {"site_id": site_id, "profile_id": profile_id, "properties": state.properties,
                 "test_profile": state.test_profile, "create_time": now, "update_time": now}
                for profile_id, state in sorted(plan.profiles.items())
                if not state.exists
            ]
            if created:
                inserted = await session.execute(
                    self._insert_profile.returning(_PROFILES.c.profile_id), created
                )
                if len(inserted.all()) != len(created):
                    raise Aborted(
                        "CONCURRENT_UPDATE",
                        "a profile of this batch was created by a concurrent call; retry",
                        field="updates",
                    )
            changed = [
                {"b_profile_id": profile_id, "b_properties": state.properties,
                 "b_test_profile": state.test_profile}
                for profile_id, state in sorted(plan.profiles.items())
                if state.exists
            ]
            if changed:
                await session.execute(
                    update(_PROFILES)
                    .where(
                        _PROFILES.c.site_id == site_id,
                        _PROFILES.c.profile_id == bindparam("b_profile_id"),
                    )
                    .values(
                        properties=bindparam("b_properties"),
                        test_profile=bindparam("b_test_profile"),
                        update_time=now,
                    )
                    .execution_options(synchronize_session=False),
                    changed,
                )
        return plan

    async def get_profile(self, site_id: str, profile_id: str) -> StoredProfile | None:
        async with self._sessions() as session:
            return await self._get_profile(session, site_id, profile_id)

    async def _get_profile(
        self, session: Any, site_id: str, profile_id: str
    ) -> StoredProfile | None:
        row = (
            await session.execute(
                select(_PROFILES).where(
                    _PROFILES.c.site_id == site_id, _PROFILES.c.profile_id == profile_id
                )
            )
        ).first()
        if row is None:
            return None
        properties = dict(row.properties or {})
        known = await self._known_types(
            session, site_id, [(PROFILE_SCOPE, name) for name in properties]
        )
        subscriber_ids = (
            await session.execute(
                select(_COLUMNS.subscriber_id)
                .where(_COLUMNS.site_id == site_id, _COLUMNS.profile_id == profile_id)
                .order_by(_COLUMNS.subscriber_id)
            )
        ).scalars().all()
        return StoredProfile(
            profile_id=row.profile_id,
            properties=properties,
            types={name: t for (_, name), t in known.items()},
            test_profile=bool(row.test_profile),
            subscriber_ids=list(subscriber_ids),
            create_time=row.create_time,
            update_time=row.update_time,
        )

    async def track_events(
        self,
        site_id: str,
        type_keys: Collection[tuple[str, str]],
        planner: EventPlanner,
        now: datetime,
    ) -> tuple[EventPlan, set[str]]:
        """In one transaction: reads the site's types of these (scope, name) keys, lets
        `planner` decide, and inserts its rows with one INSERT .. ON CONFLICT DO NOTHING
        executed for the whole batch. Returns the plan and the event ids newly stored
        (the others were there already)."""
        async with self._sessions.begin() as session:
            known = await self._known_types(session, site_id, type_keys)
            plan = planner(known)
            await self._fix_types(session, site_id, plan.new_types, now)
            stored: set[str] = set()
            if plan.rows:
                rows = plan.rows  # the plan's own rows: completed here, not copied
                await self._attribute_to_profiles(session, site_id, rows)
                if self._postgresql:
                    # The site and the receive time are one parameter each.
                    result = await session.execute(
                        _POSTGRESQL_TRACK_EVENTS,
                        {"site_id": site_id, "now": now, "rows": _json_events(rows)},
                    )
                else:
                    for row in rows:
                        row["site_id"], row["receive_time"] = site_id, now
                    result = await session.execute(
                        self._insert_event.returning(_EVENTS.c.event_id), rows
                    )
                stored = set(result.scalars().all())
        return plan, stored

    async def _attribute_to_profiles(
        self, session: Any, site_id: str, rows: list[dict[str, Any]]
    ) -> None:
        """An event of a subscriber without a profile id belongs to the profile the
        subscriber is attached to (after Identify), if any; it stays anonymous otherwise."""
        anonymous = sorted(
            {row["subscriber_id"] for row in rows if row["subscriber_id"] and not row["profile_id"]}
        )
        profile_of: dict[str, str] = {}
        for start in range(0, len(anonymous), 1000):
            found = await session.execute(
                select(_COLUMNS.subscriber_id, _COLUMNS.profile_id).where(
                    _COLUMNS.site_id == site_id,
                    _COLUMNS.subscriber_id.in_(anonymous[start : start + 1000]),
                    _COLUMNS.profile_id.is_not(None),
                )
            )
            profile_of.update({s: p for s, p in found.all() if p})
        for row in rows:
            if not row["profile_id"] and row["subscriber_id"] in profile_of:
                row["profile_id"] = profile_of[row["subscriber_id"]]

    async def identify(
        self, site_id: str, subscriber_id: str, profile_id: str, now: datetime
    ) -> tuple[StoredProfile, int] | None:
        """Attaches the subscriber to the profile (created if missing) and gives the
        profile the subscriber's anonymous events, in one transaction. None when the
        site has no such subscriber."""
        async with self._sessions.begin() as session:
            attached = await session.execute(
                update(_TABLE)
                .where(_COLUMNS.site_id == site_id, _COLUMNS.subscriber_id == subscriber_id)
                .values(profile_id=profile_id, update_time=now)
                .returning(_COLUMNS.subscriber_id)
            )
            if attached.first() is None:
                return None
            await session.execute(
                self._insert_profile,
                {"site_id": site_id, "profile_id": profile_id, "properties": {},
                 "test_profile": False, "create_time": now, "update_time": now},
            )
            moved = await session.execute(
                update(_EVENTS)
                .where(
                    _EVENTS.c.site_id == site_id,
                    _EVENTS.c.subscriber_id == subscriber_id,
                    _EVENTS.c.profile_id.is_(None),
                )
                .values(profile_id=profile_id)
            )
            profile = await self._get_profile(session, site_id, profile_id)
        assert profile is not None
        return profile, moved.rowcount

    async def active_among(self, site_id: str, subscriber_ids: Collection[str]) -> set[str]:
        """Which of these ids are active subscribers of the site."""
        if not subscriber_ids:
            return set()
        async with self._engine.connect() as connection:
            result = await connection.execute(
                self._active_among,
                {"site_id": site_id, "ids": json.dumps(list(subscriber_ids))},
            )
            return set(result.scalars())

    async def page(self, site_id: str, *, after: str | None, limit: int) -> list[Subscriber]:
        async with self._sessions() as session:
            rows = await session.execute(page_query(site_id, after=after, limit=limit))
            return [_to_subscriber(row) for row in rows]

    async def audience_page(
        self,
        site_id: str,
        snapshot_time: datetime,
        *,
        only: Collection[str] | None,
        only_profiles: Collection[str] = (),
        after: str | None,
        limit: int,
    ) -> list[AudienceEntry]:
        """Up to `limit` members of the site's audience at `snapshot_time` with ids above
        `after`, in id order (see audience_query). A listed audience (`only` not None)
        is those among `only` and the subscribers of `only_profiles`
        (listed_audience_query)."""
        if only is None:
            query = audience_query(site_id, snapshot_time, after=after, limit=limit)
        else:
            query = listed_audience_query(
                site_id,
                snapshot_time,
                subscriber_ids=list(only),
                profile_ids=list(only_profiles),
                after=after,
                limit=limit,
                postgresql=self._postgresql,
            )
        async with self._engine.connect() as connection:
            if only is None and self._postgresql:
                # Walk (site_id, subscriber_id) in order and stop at the limit. On a table
                # without statistics yet (a site that has just registered or imported) the
                # planner guesses one row, reads the whole rest of the site by bitmap and
                # sorts it for every page: quadratic, 15-35 ms a page at 20,000.
                await connection.execute(_ORDERED_WALK)
            if only is not None and self._postgresql:
                # Planned for this site each time: a plan prepared once (psycopg prepares
                # a statement run often) assumes an average site, and for a large one
                # walks its ids instead of looking the listed up.
                await connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            rows = (await connection.execute(query)).all()
        return [_to_audience_entry(row) for row in rows]

    async def profile_properties(
        self, site_id: str, profile_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The named properties of these profiles of the site, as stored ({name: JSON
        value}), read in one statement; a profile having none of them is left out."""
        if not profile_ids or not names:
            return {}
        parameters = {
            "site_id": site_id,
            "ids": json.dumps(list(profile_ids)),
            "names": json.dumps(list(names)),
        }
        async with self._engine.connect() as connection:
            rows = (await connection.execute(self._profile_properties, parameters)).all()
        if self._postgresql:
            return {profile_id: properties for profile_id, properties in rows if properties}
        wanted = set(names)
        found: dict[str, dict[str, Any]] = {}
        for profile_id, properties in rows:
            picked = {n: v for n, v in (properties or {}).items() if n in wanted}
            if picked:
                found[profile_id] = picked
        return found

    @property
    def samples(self) -> bool:
        """Whether reach can be estimated from sample buckets (PostgreSQL computes them)."""
        return self._postgresql

    async def _for_segments(self, connection: Any) -> None:
        """Settings for one segment evaluation (PostgreSQL; this transaction only): room
        to hash a large site's sets of people in memory, and no JIT compilation, which
        costs more (a quarter second) than these queries gain from it."""
        if self._postgresql:
            await connection.execute(text("SET LOCAL work_mem = '256MB'"))
            await connection.execute(text("SET LOCAL jit = off"))

    async def property_types(
        self, site_id: str, needed: Collection[tuple[str, str]] = ()
    ) -> dict[tuple[str, str], PropertyType]:
        """Every (scope, name) -> type the site has stored. A type never changes once
        stored, so the answer is kept (per site, LRU) and read again only when a key in
        `needed` is not in it yet (it may have been stored since)."""
        known = self._types.get(site_id)
        if known is not None and all(key in known for key in needed):
            return known
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(_TYPES.c.scope, _TYPES.c.name, _TYPES.c.type).where(
                    _TYPES.c.site_id == site_id
                )
            )
            known = {(scope, name): PropertyType(type_) for scope, name, type_ in rows}
        self._types[site_id] = known
        return known

    def compiler(
        self, site_id: str, now: datetime, types: Mapping[tuple[str, str], PropertyType]
    ) -> SegmentCompiler:
        return SegmentCompiler(site_id, now, types, postgresql=self._postgresql)

    async def matching_pairs(
        self, site_id: str, condition: Condition | None, now: datetime
    ) -> set[tuple[str | None, str | None]]:
        """Every (profile_id, subscriber_id) pair of the site that the definition selects
        at `now` (see segment_sql): for tests and small sites; runs stream instead."""
        types = await self.property_types(site_id, _keys_of(condition))
        pairs = self.compiler(site_id, now, types).matching(condition).subquery("matching")
        async with self._engine.begin() as connection:
            await self._for_segments(connection)
            rows = await connection.execute(select(pairs.c.profile_id, pairs.c.subscriber_id))
            return {(profile_id, subscriber_id) for profile_id, subscriber_id in rows}


    async def reach(
        self,
        site_id: str,
        condition: Condition | None,
        now: datetime,
        *,
        sample_below: int | None = None,
    ) -> ReachCounts:
        """Reach of a definition in one statement over the matching pairs: of every
        person, or (sample_below, PostgreSQL) of the people in sample buckets below it,
        with the sum of squared reachable subscribers per person an estimate's error
        needs."""
        types = await self.property_types(site_id, _keys_of(condition))
        compiler = SegmentCompiler(
            site_id, now, types, postgresql=self._postgresql, sample_below=sample_below
        )
        matching = compiler.matching(condition).cte("matching")
        active = matching.c.state == SubscriberState.ACTIVE.value
        per_person = (
            select(func.count().filter(active).label("reachable"))
            .group_by(
                matching.c.profile_id,
                case((matching.c.profile_id.is_(None), matching.c.subscriber_id)),
            )
            .subquery("per_person")
        )
        people = select(
            literal("people").label("kind"),
            (
                func.count(func.distinct(matching.c.profile_id))
                + func.count(matching.c.subscriber_id).filter(matching.c.profile_id.is_(None))
            ).label("value"),
        )
        squares = select(
            literal("squares").label("kind"),
            func.coalesce(func.sum(per_person.c.reachable * per_person.c.reachable), 0),
        )
        reachable = (
            select(matching.c.browser, func.count())
            .where(active)
            .group_by(matching.c.browser)
        )
        async with self._engine.begin() as connection:
            await self._for_segments(connection)
            rows = (await connection.execute(union_all(people, squares, reachable))).all()
        values = {kind: int(value) for kind, value in rows}
        by_browser = {
            Browser(kind): count for kind, count in values.items() if kind not in ("people", "squares")
        }
        return ReachCounts(
            people=values["people"],
            reachable=sum(by_browser.values()),
            by_browser=by_browser,
            reachable_squares=values["squares"],
        )

    async def person_of(
        self, site_id: str, *, profile_id: str | None, subscriber_id: str | None
    ) -> Person | None:
        """The person a profile id or subscriber id stands for (a subscriber of a profile
        stands for its profile); None when the site knows neither."""
        async with self._engine.connect() as connection:
            return await self._person_on(connection, site_id, profile_id, subscriber_id)

    async def match_person(
        self, site_id: str, person: Person, condition: Condition | None, now: datetime
    ) -> tuple[bool, list[str]]:
        """Whether the person matches, and its matching active subscribers (id order)."""
        types = await self.property_types(site_id, _keys_of(condition))
        async with self._engine.connect() as connection:
            return await self._match_on(connection, site_id, person, condition, now, types)

    async def match_one(
        self,
        site_id: str,
        *,
        profile_id: str | None,
        subscriber_id: str | None,
        condition: Condition | None,
        now: datetime,
    ) -> tuple[bool, list[str]] | None:
        """person_of then match_person on one connection (a pool checkout costs a ping
        and a rollback: round trips that were a third of a match); None: no such person."""
        types = await self.property_types(site_id, _keys_of(condition))
        async with self._engine.connect() as connection:
            person = await self._person_on(connection, site_id, profile_id, subscriber_id)
            if person is None:
                return None
            return await self._match_on(connection, site_id, person, condition, now, types)

    async def _person_on(
        self, connection: Any, site_id: str, profile_id: str | None, subscriber_id: str | None
    ) -> Person | None:
        if subscriber_id is not None:
            row = (
                await connection.execute(
                    _PROFILE_OF_SUBSCRIBER, {"site_id": site_id, "subscriber_id": subscriber_id}
                )
            ).first()
            if row is None:
                return None
            if row.profile_id is None:
                return Person(None, subscriber_id)
            return Person(row.profile_id, None)
        known = (
            await connection.execute(_PROFILE_KNOWN, {"site_id": site_id, "profile_id": profile_id})
        ).first()
        return Person(profile_id, None) if known else None

    async def _match_on(
        self,
        connection: Any,
        site_id: str,
        person: Person,
        condition: Condition | None,
        now: datetime,
        types: Mapping[tuple[str, str], PropertyType],
    ) -> tuple[bool, list[str]]:
        statement, values = self._one_person_statement(site_id, person, condition, now, types)
        rows = (await connection.execute(statement, values)).all()
        reachable = sorted(
            subscriber_id
            for subscriber_id, state in rows
            if subscriber_id is not None and state == SubscriberState.ACTIVE.value
        )
        return bool(rows), reachable

    def _one_person_statement(
        self,
        site_id: str,
        person: Person,
        condition: Condition | None,
        now: datetime,
        types: Mapping[tuple[str, str], PropertyType],
    ) -> tuple[Select[Any], dict[str, Any]]:
        """One person's match statement and its parameter values. Building it was most
        of a match's time, and it depends only on the definition, the types it reads and
        the kind of person: the site, the person and the times are parameters, so it is
        built once per those and kept (LRU)."""
        key = (
            condition,
            person.profile_id is not None,
            tuple((k, types.get(k)) for k in sorted(_keys_of(condition))),
        )
        kept = self._person_statements.get(key)
        if kept is None:
            compiler = SegmentCompiler(
                site_id, now, types, postgresql=self._postgresql, person=person
            )
            matching = compiler.matching(condition).subquery("matching")
            statement = select(matching.c.subscriber_id, matching.c.state)
            self._person_statements[key] = (statement, dict(compiler.clock))
            return statement, {}  # built with this call's values
        statement, clock = kept
        values = clock_values(clock, now)
        values["site_id"] = site_id
        values["person_id"] = person.key
        return statement, values

    async def audience_kept(self, site_id: str, audience_key: str) -> bool:
        async with self._engine.connect() as connection:
            row = await connection.execute(
                select(_KEPT.c.members).where(
                    _KEPT.c.site_id == site_id, _KEPT.c.audience_key == audience_key
                )
            )
            return row.first() is not None

    async def keep_audience(
        self,
        site_id: str,
        audience_key: str,
        condition: Condition | None,
        snapshot_time: datetime,
        now: datetime,
    ) -> int:
        """Evaluates the definition as of snapshot_time and keeps the subscribers it
        selects that were in the audience then (created by then, not unsubscribed by
        then), in one transaction with the audience's row: a second keeper of the same
        key (a retried first page) finds the row and keeps nothing more. Returns how
        many members the key has. Kept audiences older than KEPT_AUDIENCE_DAYS of the
        site are dropped on the way."""
        types = await self.property_types(site_id, _keys_of(condition))
        matching = (
            self.compiler(site_id, snapshot_time, types).matching(condition).subquery("matching")
        )
        members = select(
            literal(site_id), literal(audience_key), matching.c.subscriber_id
        ).where(
            matching.c.subscriber_id.is_not(None),
            matching.c.create_time <= bindparam(None, snapshot_time, type_=UTCDateTime),
            or_(
                matching.c.unsubscribe_time.is_(None),
                matching.c.unsubscribe_time > bindparam(None, snapshot_time, type_=UTCDateTime),
            ),
        )
        expired = select(_KEPT.c.audience_key).where(
            _KEPT.c.site_id == site_id,
            _KEPT.c.create_time < now - timedelta(days=KEPT_AUDIENCE_DAYS),
        )
        async with self._engine.begin() as connection:
            await self._for_segments(connection)
            claimed = await connection.execute(
                self._insert_kept.values(
                    site_id=site_id,
                    audience_key=audience_key,
                    snapshot_time=snapshot_time,
                    members=0,
                    create_time=now,
                )
            )
            if claimed.rowcount == 0:
                row = await connection.execute(
                    select(_KEPT.c.members).where(
                        _KEPT.c.site_id == site_id, _KEPT.c.audience_key == audience_key
                    )
                )
                return int(row.scalar_one())
            inserted = await connection.execute(
                _KEPT_MEMBERS.insert().from_select(
                    ["site_id", "audience_key", "subscriber_id"], members
                )
            )
            count = inserted.rowcount
            await connection.execute(
                update(_KEPT)
                .where(_KEPT.c.site_id == site_id, _KEPT.c.audience_key == audience_key)
                .values(members=count)
            )
            await connection.execute(
                _KEPT_MEMBERS.delete().where(
                    _KEPT_MEMBERS.c.site_id == site_id,
                    _KEPT_MEMBERS.c.audience_key.in_(expired),
                )
            )
            await connection.execute(
                _KEPT.delete().where(
                    _KEPT.c.site_id == site_id, _KEPT.c.audience_key.in_(expired)
                )
            )
        return int(count)

    async def kept_audience_page(
        self, site_id: str, audience_key: str, *, after: str | None, limit: int
    ) -> list[AudienceEntry]:
        """Up to `limit` members of a kept audience with ids above `after`, in id order;
        a member unsubscribed since the snapshot is marked so."""
        m = _KEPT_MEMBERS
        conditions = [m.c.site_id == site_id, m.c.audience_key == audience_key]
        if after is not None:
            conditions.append(m.c.subscriber_id > after)
        query = (
            select(*_AUDIENCE_COLUMNS)
            .select_from(
                m.join(
                    _TABLE,
                    and_(
                        _COLUMNS.site_id == m.c.site_id,
                        _COLUMNS.subscriber_id == m.c.subscriber_id,
                    ),
                )
            )
            .where(*conditions)
            .order_by(m.c.subscriber_id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_audience_entry(row) for row in rows]


# A person's lookups, built once (statement construction costs more than the queries).
_PROFILE_OF_SUBSCRIBER = select(_COLUMNS.profile_id).where(
    _COLUMNS.site_id == bindparam("site_id"), _COLUMNS.subscriber_id == bindparam("subscriber_id")
)
_PROFILE_KNOWN = select(literal(1)).where(
    or_(
        exists().where(
            _PROFILES.c.site_id == bindparam("site_id"),
            _PROFILES.c.profile_id == bindparam("profile_id"),
        ),
        exists().where(
            _COLUMNS.site_id == bindparam("site_id"),
            _COLUMNS.profile_id == bindparam("profile_id"),
        ),
    )
)


def _keys_of(condition: Condition | None) -> set[tuple[str, str]]:
    return set() if condition is None else type_keys(condition)


def _one_subscriber(site_id: str, subscriber_id: str) -> Select[Any]:
    return select(_TABLE).where(
        _COLUMNS.site_id == site_id, _COLUMNS.subscriber_id == subscriber_id
    )


_BROWSER_OF = {browser.value: browser for browser in Browser}


def _to_audience_entry(row: Any) -> AudienceEntry:
    (
        subscriber_id, endpoint, p256dh, auth, browser, timezone, profile_id, unsubscribed,
        vapid_key_id, apns_topic,
    ) = row  # fmt: skip
    return AudienceEntry(
        subscriber_id,
        endpoint,
        bytes(p256dh),
        bytes(auth),
        _BROWSER_OF[browser],
        timezone,
        profile_id,
        bool(unsubscribed),
        vapid_key_id,
        apns_topic,
    )


def _unsubscribe_statement(
    site_id: str, subscriber_ids: Sequence[str], reason: str, now: datetime
) -> Any:
    return (
        update(_TABLE)
        .where(
            _COLUMNS.site_id == site_id,
            _COLUMNS.subscriber_id.in_(subscriber_ids),
            _COLUMNS.state == SubscriberState.ACTIVE.value,
        )
        .values(
            state=SubscriberState.UNSUBSCRIBED.value,
            unsubscribe_reason=reason,
            unsubscribe_time=now,
            update_time=now,
        )
    )


def page_query(site_id: str, *, after: str | None, limit: int) -> Select[Any]:
    """Up to `limit` of the site's subscribers with ids above `after`, in id order.

    Keyset pagination: with the (site_id, subscriber_id) index this is an index range
    scan, as cheap for the millionth row as for the first.
    """
    conditions = [_COLUMNS.site_id == site_id]
    if after is not None:
        conditions.append(_COLUMNS.subscriber_id > after)
    return select(_TABLE).where(and_(*conditions)).order_by(_COLUMNS.subscriber_id).limit(limit)


def audience_query(
    site_id: str,
    snapshot_time: datetime,
    *,
    after: str | None = None,
    limit: int,
) -> Select[Any]:
    """The site's subscribers created at or before `snapshot_time` and not unsubscribed
    at or before it, with ids above `after`, in id order.

    The same keyset range scan over (site_id, subscriber_id) as page_query; the time
    conditions filter the rows the scan reads. The columns are exactly what a send needs.
    """
    conditions = [_COLUMNS.site_id == site_id, *_in_audience_at(snapshot_time)]
    if after is not None:
        conditions.append(_COLUMNS.subscriber_id > after)
    return (
        select(*_AUDIENCE_COLUMNS)
        .where(and_(*conditions))
        .order_by(_COLUMNS.subscriber_id)
        .limit(limit)
    )


def listed_audience_query(
    site_id: str,
    snapshot_time: datetime,
    *,
    subscriber_ids: Sequence[str],
    profile_ids: Sequence[str],
    after: str | None = None,
    limit: int,
    postgresql: bool,
) -> Select[Any]:
    """A listed audience (a test or transactional send): of the subscribers among
    `subscriber_ids` and those of a profile among `profile_ids`, each once, the ones in
    the audience at `snapshot_time` (as audience_query) with ids above `after`, in id
    order.

    Driven by the lists, not by the keyset scan: each list travels as one JSON
    parameter, its ids are looked up in (site_id, profile_id) and (site_id,
    subscriber_id), and the rows found (a few thousand at most) are sorted. Scanning
    the site in id order for them reads all of it when the listed are few, and SQLite,
    with no statistics, would choose that scan for the ORDER BY .. LIMIT.
    """
    assert subscriber_ids or profile_ids, "a listed audience lists someone"
    arms = []
    if subscriber_ids:
        listed_ids = _json_strings(subscriber_ids, postgresql)
        arms.append(select(listed_ids.c.value.label("subscriber_id")))
    if profile_ids:
        of_profile = _TABLE.alias("of_profile")
        arms.append(
            select(of_profile.c.subscriber_id).where(
                of_profile.c.site_id == site_id,
                of_profile.c.profile_id.in_(
                    select(_json_strings(profile_ids, postgresql).c.value)
                ),
            )
        )
    listed = (union(*arms) if len(arms) > 1 else arms[0].distinct()).subquery("listed")
    conditions = list(_in_audience_at(snapshot_time))
    if after is not None:
        # On the joined row, not on `listed`: SQLite pushes a bound on the subquery's
        # column into the profile lookup, then scans the site's id range for it.
        conditions.append(_COLUMNS.subscriber_id > after)
    return (
        select(*_AUDIENCE_COLUMNS)
        .select_from(
            listed.join(
                _TABLE,
                and_(
                    _COLUMNS.site_id == site_id,
                    _COLUMNS.subscriber_id == listed.c.subscriber_id,
                ),
            )
        )
        .where(and_(*conditions))
        .order_by(listed.c.subscriber_id)
        .limit(limit)
    )


def _in_audience_at(snapshot_time: datetime) -> tuple[Any, ...]:
    """In the audience at `snapshot_time`: created by then and not unsubscribed by then."""
    return (
        _COLUMNS.create_time <= snapshot_time,
        or_(_COLUMNS.unsubscribe_time.is_(None), _COLUMNS.unsubscribe_time > snapshot_time),
    )


def _json_strings(values: Sequence[str], postgresql: bool) -> Any:
    """A table of `values` (column `value`), sent as one JSON array parameter."""
    array = json.dumps(list(values))
    if postgresql:
        return func.json_array_elements_text(literal(array).cast(JSON)).table_valued("value")
    return func.json_each(array).table_valued("value")
