"""The SQL of imports and exports (services/segment/imports.py): bulk upserts of imported
subscriptions, and keyset pages of who an audience selects.

Like store.py, every statement filters on the caller's site, is built once per store,
and a batch is a fixed number of executions however many rows it has: PostgreSQL gets
the batch as one JSON text, SQLite one compiled statement executed with a list of rows.
The subscription upsert itself is subscription_writes.py's, shared with registration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.db import UTCDateTime
from services.segment import subscription_writes
from services.segment.definition import Condition
from services.segment.models import (
    PROFILE_SCOPE,
    ProfileRow,
    PropertyType,
    SubscriberRow,
    SubscriberState,
)
from services.segment.store import (
    StoredProfile,
    Subscriber,
    SubscriberStore,
    _to_subscriber,
)
from services.segment.subscription_writes import (
    SubscriptionWrite,
    insert_new_subscriptions,
    write_subscriptions,
)

_TABLE = cast(Table, SubscriberRow.__table__)
_COLUMNS = _TABLE.c
_PROFILES = cast(Table, ProfileRow.__table__)


# What an import writes for these endpoints of its batch given what the site has for
# each (absent: a new subscriber); an endpoint with no write is unchanged.
Merge = Callable[[Sequence[str], Mapping[str, "StoredSubscription"]], list[SubscriptionWrite]]


@dataclass(frozen=True, slots=True)
class ImportedWrites:
    written: int  # subscribers created or changed
    created: int  # of them, created
    unchanged: int  # rows that gave what the site had


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


# Each endpoint looked up in the (site_id, endpoint) index on its own (LATERAL .. LIMIT 1,
# as store.py's active_among does): without the LIMIT, a table that grew since its
# statistics (a fresh site's first import) got a plan that read the whole site for every
# batch, 67 µs a row at 100,000 subscribers and growing with them.
_POSTGRESQL_STORED = text(
    "SELECT s.endpoint, s.subscriber_id, s.p256dh, s.auth, s.browser, s.timezone, "
    "s.profile_id, s.vapid_key_id, s.state, s.unsubscribe_reason, s.unsubscribe_time "
    "FROM json_array_elements_text(CAST(:endpoints AS json)) AS n(endpoint) "
    "CROSS JOIN LATERAL (SELECT * FROM segment_subscribers AS x "
    "WHERE x.site_id = :site_id AND x.endpoint = n.endpoint LIMIT 1) AS s"
).columns(unsubscribe_time=UTCDateTime())
_POSTGRESQL_PROFILES_OF = text(
    "SELECT p.profile_id, p.properties, p.test_profile "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) "
    "CROSS JOIN LATERAL (SELECT * FROM segment_profiles AS x "
    "WHERE x.site_id = :site_id AND x.profile_id = n.id) AS p"
)
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
            self._stored = _POSTGRESQL_STORED
            self._profiles_of = _POSTGRESQL_PROFILES_OF
        else:
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

    @staticmethod
    def _list(values: Sequence[str]) -> str:
        return json.dumps(list(values))

    async def import_subscriptions(
        self,
        site_id: str,
        as_new: Sequence[SubscriptionWrite],
        merge: Merge,
        now: datetime,
        *,
        insert_first: bool = True,
    ) -> ImportedWrites:
        """One transaction: the batch (`as_new`: distinct endpoints, each offered as a
        new subscriber) written as `merge` decides for each endpoint given what the site
        has, `Subscribed` recorded for each subscriber created and the named profiles
        created (see subscription_writes.write_subscriptions).

        A large batch on PostgreSQL is tried insert-first (unless `insert_first` is
        false: the caller expects its endpoints there, a re-run); otherwise, or when
        that finds rows to change, every endpoint is read first."""
        if not as_new:
            return ImportedWrites(0, 0, 0)
        if insert_first and self._postgresql and len(as_new) >= subscription_writes.STAGED_BATCH:
            written = await self._insert_first(site_id, as_new, merge, now)
            if written is not None:
                return written
        async with self._engine.begin() as connection:
            endpoints = [w.endpoint for w in as_new]
            stored = await self._stored_subscriptions(connection, site_id, endpoints)
            writes = merge(endpoints, stored)
            _, created = await write_subscriptions(connection, site_id, writes, now)
        return ImportedWrites(len(writes), len(created), len(as_new) - len(writes))

    async def _insert_first(
        self, site_id: str, as_new: Sequence[SubscriptionWrite], merge: Merge, now: datetime
    ) -> ImportedWrites | None:
        """The batch's endpoints new to the site inserted (insert_new_subscriptions) and
        only the others read, in one transaction; None, with nothing stored, when some of
        those others need changing. Changing them after the inserts would lock rows out
        of endpoint order: a concurrent registration (one upsert in endpoint order)
        holding one of them while it waits for a row just inserted would deadlock with
        this transaction. A fresh import has none; a re-run's are unchanged."""
        async with self._engine.connect() as connection:
            async with connection.begin() as transaction:
                inserted = await insert_new_subscriptions(connection, site_id, as_new, now)
                existing = [w.endpoint for w in as_new if w.endpoint not in inserted]
                if existing:
                    stored = await self._stored_subscriptions(connection, site_id, existing)
                    if merge(existing, stored):
                        await transaction.rollback()
                        return None
        return ImportedWrites(len(inserted), len(inserted), len(existing))

    async def _stored_subscriptions(
        self, connection: AsyncConnection, site_id: str, endpoints: Sequence[str]
    ) -> dict[str, StoredSubscription]:
        """What the site has for these endpoints, by endpoint (one statement)."""
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
