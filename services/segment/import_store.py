"""The SQL of imports and exports (services/segment/imports.py): bulk upserts of imported
subscriptions, and keyset pages of who an audience selects.

Like store.py, every statement filters on the caller's site, is built once per store,
and a batch is a fixed number of executions however many rows it has: PostgreSQL gets
one array per column (`unnest`), SQLite one compiled statement executed with a list
of rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import UTCDateTime
from services.segment.definition import Condition
from services.segment.models import (
    PROFILE_SCOPE,
    EventRow,
    ProfileRow,
    PropertyType,
    PropertyTypeRow,
    SubscriberRow,
    SubscriberState,
)
from services.segment.store import (
    SUBSCRIBED_EVENT,
    StoredProfile,
    Subscriber,
    SubscriberStore,
    _system_event,
    _to_subscriber,
    subscribed_event_id,
)

_TABLE = cast(Table, SubscriberRow.__table__)
_COLUMNS = _TABLE.c
_PROFILES = cast(Table, ProfileRow.__table__)
_TYPES = cast(Table, PropertyTypeRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)

# What an imported row sets; the rest (site, update time) is the same for a batch.
_ROW_VALUES = (
    "subscriber_id", "endpoint", "p256dh", "auth", "browser", "timezone", "profile_id",
    "vapid_key_id", "state", "unsubscribe_reason", "unsubscribe_time", "create_time",
)  # fmt: skip
# An existing row is updated with every imported column but its id and create time:
# create_time stays what the first import (or registration) stored.
_UPDATED = [name for name in _ROW_VALUES if name not in ("subscriber_id", "create_time")]


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """What a site already has for an endpoint, as an import compares it."""

    subscriber_id: str
    p256dh: bytes
    auth: bytes
    browser: str
    timezone: str
    profile_id: str | None
    vapid_key_id: str | None
    state: str
    unsubscribe_reason: str | None
    unsubscribe_time: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionWrite:
    """One row to write: a new subscriber (its fresh id) or an existing one's new state."""

    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: str
    timezone: str
    profile_id: str | None
    vapid_key_id: str | None
    state: str
    unsubscribe_reason: str | None
    unsubscribe_time: datetime | None
    create_time: datetime
    new: bool


# PostgreSQL gets a batch as one JSON text (json_to_recordset): one parameter whatever the
# batch size, parsed by the server in C; binding a dozen arrays of 1000 items costs the
# client more than the database spends storing them. Keys travel as standard base64.
_RECORD = (
    "subscriber_id varchar, endpoint varchar, p256dh text, auth text, browser varchar, "
    "timezone varchar, profile_id varchar, vapid_key_id varchar, state varchar, "
    "unsubscribe_reason varchar, unsubscribe_time timestamptz, create_time timestamptz"
)
_POSTGRESQL_UPSERT = text(
    "INSERT INTO segment_subscribers (subscriber_id, endpoint, p256dh, auth, browser, "
    "timezone, profile_id, vapid_key_id, state, unsubscribe_reason, unsubscribe_time, "
    "create_time, site_id, update_time) "
    "SELECT r.subscriber_id, r.endpoint, decode(r.p256dh, 'base64'), decode(r.auth, 'base64'), "
    "r.browser, r.timezone, r.profile_id, r.vapid_key_id, r.state, r.unsubscribe_reason, "
    "r.unsubscribe_time, r.create_time, :site_id, :now "
    f"FROM json_to_recordset(CAST(:rows AS json)) AS r({_RECORD}) "
    "ON CONFLICT (site_id, endpoint) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*_UPDATED, "update_time"))
    + " RETURNING subscriber_id, endpoint"
).bindparams(bindparam("now", type_=UTCDateTime()))
# Each endpoint looked up in the (site_id, endpoint) index on its own (LATERAL), whatever
# the planner guesses about a fresh table (as store.py's active_among does).
_POSTGRESQL_STORED = text(
    "SELECT s.endpoint, s.subscriber_id, s.p256dh, s.auth, s.browser, s.timezone, "
    "s.profile_id, s.vapid_key_id, s.state, s.unsubscribe_reason, s.unsubscribe_time "
    "FROM json_array_elements_text(CAST(:endpoints AS json)) AS n(endpoint) "
    "CROSS JOIN LATERAL (SELECT * FROM segment_subscribers AS x "
    "WHERE x.site_id = :site_id AND x.endpoint = n.endpoint) AS s"
).columns(unsubscribe_time=UTCDateTime())
_POSTGRESQL_PROFILES_OF = text(
    "SELECT p.profile_id, p.properties, p.test_profile "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) "
    "CROSS JOIN LATERAL (SELECT * FROM segment_profiles AS x "
    "WHERE x.site_id = :site_id AND x.profile_id = n.id) AS p"
)
_POSTGRESQL_SUBSCRIBED_EVENTS = text(
    "INSERT INTO segment_events (site_id, event_id, name, profile_id, subscriber_id, "
    "occur_time, properties, receive_time) "
    "SELECT :site_id, r.event_id, :name, r.profile_id, r.subscriber_id, r.occur_time, "
    "'{}'::jsonb, :now FROM json_to_recordset(CAST(:rows AS json)) "
    "AS r(event_id varchar, profile_id varchar, subscriber_id varchar, occur_time timestamptz) "
    "ON CONFLICT DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))
_POSTGRESQL_PROFILES = text(
    "INSERT INTO segment_profiles (site_id, profile_id, properties, test_profile, "
    "create_time, update_time) "
    "SELECT :site_id, n.id, '{}'::jsonb, false, :now, :now "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) ON CONFLICT DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _json_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _json_row(write: SubscriptionWrite) -> dict[str, Any]:
    return {
        "subscriber_id": write.subscriber_id,
        "endpoint": write.endpoint,
        "p256dh": base64.b64encode(write.p256dh).decode(),
        "auth": base64.b64encode(write.auth).decode(),
        "browser": write.browser,
        "timezone": write.timezone,
        "profile_id": write.profile_id,
        "vapid_key_id": write.vapid_key_id,
        "state": write.state,
        "unsubscribe_reason": write.unsubscribe_reason,
        "unsubscribe_time": _json_time(write.unsubscribe_time),
        "create_time": _json_time(write.create_time),
    }


def _sqlite_upsert() -> Any:
    statement = sqlite.insert(_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["site_id", "endpoint"],
        set_={**{name: statement.excluded[name] for name in _UPDATED},
              "update_time": statement.excluded.update_time},
    ).returning(_COLUMNS.subscriber_id, _COLUMNS.endpoint)  # fmt: skip


_STORED_COLUMNS = (
    _COLUMNS.endpoint,
    _COLUMNS.subscriber_id,
    _COLUMNS.p256dh,
    _COLUMNS.auth,
    _COLUMNS.browser,
    _COLUMNS.timezone,
    _COLUMNS.profile_id,
    _COLUMNS.vapid_key_id,
    _COLUMNS.state,
    _COLUMNS.unsubscribe_reason,
    _COLUMNS.unsubscribe_time,
)


class ImportStore:
    def __init__(self, engine: AsyncEngine, subscribers: SubscriberStore) -> None:
        self._engine = engine
        self._subscribers = subscribers
        self._postgresql = engine.dialect.name == "postgresql"
        self._stored: Any
        self._profiles_of: Any
        if self._postgresql:
            self._upsert = _POSTGRESQL_UPSERT
            self._stored = _POSTGRESQL_STORED
            self._profiles_of = _POSTGRESQL_PROFILES_OF
        else:
            self._upsert = _sqlite_upsert()
            # The endpoints travel as one JSON text, so the statement is the same for
            # every batch size.
            self._stored = select(*_STORED_COLUMNS).where(
                _COLUMNS.site_id == bindparam("site_id"),
                _COLUMNS.endpoint.in_(
                    select(text("value")).select_from(func.json_each(bindparam("endpoints")))
                ),
            )
            self._profiles_of = select(
                _PROFILES.c.profile_id, _PROFILES.c.properties, _PROFILES.c.test_profile
            ).where(
                _PROFILES.c.site_id == bindparam("site_id"),
                _PROFILES.c.profile_id.in_(
                    select(text("value")).select_from(func.json_each(bindparam("ids")))
                ),
            )
        insert = postgresql.insert if self._postgresql else sqlite.insert
        self._insert_event = insert(_EVENTS).on_conflict_do_nothing()
        self._insert_profile = insert(_PROFILES).on_conflict_do_nothing()

    @staticmethod
    def _list(values: Sequence[str]) -> str:
        return json.dumps(list(values))

    async def stored_subscriptions(
        self, site_id: str, endpoints: Sequence[str]
    ) -> dict[str, StoredSubscription]:
        """What the site has for these endpoints, by endpoint (one statement)."""
        if not endpoints:
            return {}
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                self._stored, {"site_id": site_id, "endpoints": self._list(endpoints)}
            )
            return {
                row.endpoint: StoredSubscription(
                    subscriber_id=row.subscriber_id,
                    p256dh=bytes(row.p256dh),
                    auth=bytes(row.auth),
                    browser=row.browser,
                    timezone=row.timezone,
                    profile_id=row.profile_id,
                    vapid_key_id=row.vapid_key_id,
                    state=row.state,
                    unsubscribe_reason=row.unsubscribe_reason,
                    unsubscribe_time=row.unsubscribe_time,
                )
                for row in rows
            }

    async def write_subscriptions(
        self, site_id: str, writes: Sequence[SubscriptionWrite], now: datetime
    ) -> int:
        """Upserts the rows (distinct endpoints) in one transaction: INSERT .. ON CONFLICT
        (site_id, endpoint) DO UPDATE, in endpoint order (two overlapping imports lock
        rows in one order). Records `Subscribed` (occurring at the subscriber's create
        time) for each subscriber it created, and creates the profiles the rows name.
        Returns how many subscribers it created."""
        if not writes:
            return 0
        ordered = sorted(writes, key=lambda write: write.endpoint)
        parameters: Any
        if self._postgresql:
            parameters = {
                "site_id": site_id,
                "now": now,
                "rows": json.dumps([_json_row(w) for w in ordered]),
            }
        else:
            parameters = [
                {"site_id": site_id, "update_time": now,
                 **{name: getattr(w, name) for name in _ROW_VALUES}}
                for w in ordered
            ]  # fmt: skip
        offered = {w.subscriber_id: w for w in ordered if w.new}
        async with self._engine.begin() as connection:
            rows = (await connection.execute(self._upsert, parameters)).all()
            # A subscriber is created when the row came back with the id offered for it
            # (a concurrent registration of the endpoint may have won the insert).
            created = [
                offered[subscriber_id] for subscriber_id, _ in rows if subscriber_id in offered
            ]
            profile_ids = sorted({w.profile_id for w in ordered if w.profile_id})
            if self._postgresql:
                if created:
                    events = [
                        {"event_id": subscribed_event_id(w.subscriber_id),
                         "profile_id": w.profile_id, "subscriber_id": w.subscriber_id,
                         "occur_time": w.create_time.isoformat()}
                        for w in created
                    ]  # fmt: skip
                    await connection.execute(
                        _POSTGRESQL_SUBSCRIBED_EVENTS,
                        {"site_id": site_id, "now": now, "name": SUBSCRIBED_EVENT,
                         "rows": json.dumps(events)},
                    )  # fmt: skip
                if profile_ids:
                    await connection.execute(
                        _POSTGRESQL_PROFILES,
                        {"site_id": site_id, "now": now, "ids": json.dumps(profile_ids)},
                    )
                return len(created)
            if created:
                events = []
                for write in created:
                    event = _system_event(
                        site_id,
                        subscribed_event_id(write.subscriber_id),
                        SUBSCRIBED_EVENT,
                        write.subscriber_id,
                        write.profile_id,
                        now,
                    )
                    event["occur_time"] = write.create_time
                    events.append(event)
                await connection.execute(self._insert_event, events)
            if profile_ids:
                await connection.execute(
                    self._insert_profile,
                    [
                        {"site_id": site_id, "profile_id": profile_id, "properties": {},
                         "test_profile": False, "create_time": now, "update_time": now}
                        for profile_id in profile_ids
                    ],
                )  # fmt: skip
        return len(created)

    async def profile_states(
        self, site_id: str, profile_ids: Sequence[str]
    ) -> dict[str, tuple[Any, bool]]:
        """(properties, test flag) of the site's profiles among these ids."""
        if not profile_ids:
            return {}
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                self._profiles_of, {"site_id": site_id, "ids": self._list(profile_ids)}
            )
            return {
                profile_id: (properties or {}, bool(test)) for profile_id, properties, test in rows
            }

    # ------------------------------------------------------------------- export

    async def subscribers_page(
        self,
        site_id: str,
        condition: Condition | None,
        now: datetime,
        types: Mapping[tuple[str, str], PropertyType],
        *,
        include_unsubscribed: bool,
        after: str | None,
        limit: int,
    ) -> list[tuple[Subscriber, str | None]]:
        """Up to `limit` subscribers the condition selects at `now`, with ids above
        `after`, in id order (keyset: a page reads from where the last one ended), each
        with its VAPID key id."""
        conditions = [_COLUMNS.site_id == site_id]
        if after is not None:
            conditions.append(_COLUMNS.subscriber_id > after)
        if not include_unsubscribed:
            conditions.append(_COLUMNS.state == SubscriberState.ACTIVE.value)
        query = select(_TABLE)
        if condition is not None:
            matching = (
                self._subscribers.compiler(site_id, now, types)
                .matching(condition)
                .subquery("matching")
            )
            query = query.select_from(
                _TABLE.join(
                    matching,
                    and_(
                        matching.c.subscriber_id == _COLUMNS.subscriber_id,
                        matching.c.subscriber_id.is_not(None),
                    ),
                )
            )
            if after is not None:
                conditions.append(matching.c.subscriber_id > after)
        query = query.where(*conditions).order_by(_COLUMNS.subscriber_id).limit(limit)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [(_to_subscriber(row), row.vapid_key_id) for row in rows]

    async def profiles_page(
        self,
        site_id: str,
        condition: Condition | None,
        now: datetime,
        types: Mapping[tuple[str, str], PropertyType],
        *,
        after: str | None,
        limit: int,
    ) -> list[StoredProfile]:
        """Up to `limit` distinct profiles the condition selects at `now` (a profile
        matches when any of its pairs does), ids above `after`, in id order, with their
        properties and subscribers."""
        p = _PROFILES
        conditions = [p.c.site_id == site_id]
        if after is not None:
            conditions.append(p.c.profile_id > after)
        if condition is not None:
            matching = (
                self._subscribers.compiler(site_id, now, types)
                .matching(condition)
                .subquery("matching")
            )
            selected = select(matching.c.profile_id).where(matching.c.profile_id.is_not(None))
            if after is not None:
                selected = selected.where(matching.c.profile_id > after)
            conditions.append(p.c.profile_id.in_(selected))
        query = (
            select(p.c.profile_id, p.c.properties, p.c.test_profile, p.c.create_time,
                   p.c.update_time)
            .where(*conditions)
            .order_by(p.c.profile_id)
            .limit(limit)
        )  # fmt: skip
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
            ids = [row.profile_id for row in rows]
            subscribers: dict[str, list[str]] = {}
            if ids:
                attached = await connection.execute(
                    select(_COLUMNS.profile_id, _COLUMNS.subscriber_id)
                    .where(_COLUMNS.site_id == site_id, _COLUMNS.profile_id.in_(ids))
                    .order_by(_COLUMNS.profile_id, _COLUMNS.subscriber_id)
                )
                for profile_id, subscriber_id in attached:
                    subscribers.setdefault(profile_id, []).append(subscriber_id)
        profile_types = {
            name: type_.value for (scope, name), type_ in types.items() if scope == PROFILE_SCOPE
        }
        return [
            StoredProfile(
                profile_id=row.profile_id,
                properties=dict(row.properties or {}),
                types=profile_types,
                test_profile=bool(row.test_profile),
                subscriber_ids=subscribers.get(row.profile_id, []),
                create_time=row.create_time,
                update_time=row.update_time,
            )
            for row in rows
        ]
