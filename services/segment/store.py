"""Persistence of subscribers: the only module of the segment service that speaks SQL.

Every function takes the caller's site id and filters on it, so a row of another site
is never read or changed. Bulk paths (batch registration, audience pages, batch
unsubscribes) run statements built once per store and plain Core rows, never a
statement per row or ORM objects per row.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    LargeBinary,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import UTCDateTime, session_factory
from services.segment.models import Browser, SubscriberRow, SubscriberState

_TABLE = cast(Table, SubscriberRow.__table__)
_COLUMNS = _TABLE.c

# The upsert's per-row columns; site_id, state and the time are the same for a batch.
_ROW_VALUES = ("subscriber_id", "endpoint", "p256dh", "auth", "browser", "timezone", "profile_id")
_ROW_TYPES: Mapping[str, Any] = {
    "subscriber_id": String(),
    "endpoint": String(),
    "p256dh": LargeBinary(),
    "auth": LargeBinary(),
    "browser": String(),
    "timezone": String(),
    "profile_id": String(),
}


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


@dataclass(frozen=True)
class NewSubscription:
    """What RegisterSubscriber stores, already validated by the domain."""

    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None


@dataclass(frozen=True, slots=True)
class AudienceEntry:
    """One subscriber of a run's audience: where to send and whether it left since."""

    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None
    # Unsubscribed after the snapshot time (it was in the audience then).
    unsubscribed: bool


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
    )


# All the upsert does not already know: an updated row keeps its id and create_time;
# every other column is what was sent (see _upsert_changes).
_UPSERT_RETURNS = (_COLUMNS.subscriber_id, _COLUMNS.endpoint, _COLUMNS.create_time)


def _upsert_changes(excluded: Any) -> dict[str, Any]:
    """A registration of a known endpoint renews its keys and details and re-activates it."""
    return {
        "p256dh": excluded.p256dh,
        "auth": excluded.auth,
        "browser": excluded.browser,
        "timezone": excluded.timezone,
        "profile_id": excluded.profile_id,
        "state": excluded.state,
        "unsubscribe_reason": null(),
        "unsubscribe_time": null(),
        "update_time": excluded.update_time,
    }


def _postgresql_upsert() -> Any:
    """INSERT .. SELECT FROM unnest(<one array per column>) ON CONFLICT DO UPDATE.

    A whole batch is one execution with a fixed set of parameters, so psycopg neither
    re-parses a long VALUES list nor round-trips per row.
    """
    rows = (
        func.unnest(*(bindparam(name, type_=ARRAY(_ROW_TYPES[name])) for name in _ROW_VALUES))
        .table_valued(*_ROW_VALUES)
        .render_derived()
    )
    now = bindparam("now", type_=UTCDateTime())
    source = select(
        *(rows.c[name] for name in _ROW_VALUES),
        bindparam("site_id", type_=String()),
        literal(SubscriberState.ACTIVE.value),
        now,
        now,
    )
    statement = postgresql.insert(_TABLE).from_select(
        [*_ROW_VALUES, "site_id", "state", "create_time", "update_time"], source
    )
    return statement.on_conflict_do_update(
        index_elements=["site_id", "endpoint"], set_=_upsert_changes(statement.excluded)
    ).returning(*_UPSERT_RETURNS)


def _sqlite_upsert() -> Any:
    """One INSERT .. ON CONFLICT DO UPDATE .. RETURNING, executed with a list of rows:
    SQLAlchemy sends it as multi-row VALUES pages of the one compiled statement."""
    statement = sqlite.insert(_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["site_id", "endpoint"], set_=_upsert_changes(statement.excluded)
    ).returning(*_UPSERT_RETURNS)


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
        self._sessions = session_factory(engine)
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise RuntimeError(f"unsupported database dialect {dialect!r}")
        self._postgresql = dialect == "postgresql"
        self._upsert = _postgresql_upsert() if self._postgresql else _sqlite_upsert()

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
        in one transaction; returns the stored subscribers by endpoint. A subscriber was
        created exactly when its id is the new id it was offered.

        INSERT .. ON CONFLICT (site_id, endpoint): two concurrent registrations of one
        endpoint cannot both insert. Rows go in endpoint order, so two overlapping
        batches lock their rows in the same order and cannot deadlock each other.
        """
        if not entries:
            return {}
        ordered = sorted(entries, key=lambda entry: entry[1].endpoint)
        parameters: Any
        if self._postgresql:
            parameters = {
                "site_id": site_id,
                "now": now,
                "subscriber_id": [subscriber_id for subscriber_id, _ in ordered],
                "endpoint": [s.endpoint for _, s in ordered],
                "p256dh": [s.p256dh for _, s in ordered],
                "auth": [s.auth for _, s in ordered],
                "browser": [s.browser.value for _, s in ordered],
                "timezone": [s.timezone for _, s in ordered],
                "profile_id": [s.profile_id for _, s in ordered],
            }
        else:
            active = SubscriberState.ACTIVE.value
            parameters = [
                {
                    "subscriber_id": subscriber_id,
                    "site_id": site_id,
                    "endpoint": s.endpoint,
                    "p256dh": s.p256dh,
                    "auth": s.auth,
                    "browser": s.browser.value,
                    "timezone": s.timezone,
                    "profile_id": s.profile_id,
                    "state": active,
                    "unsubscribe_reason": None,
                    "unsubscribe_time": None,
                    "create_time": now,
                    "update_time": now,
                }
                for subscriber_id, s in ordered
            ]
        async with self._sessions.begin() as session:
            rows = (await session.execute(self._upsert, parameters)).all()
        if len(rows) != len(entries):
            raise RuntimeError("upsert_many needs distinct endpoints")
        subscriptions = {s.endpoint: s for _, s in entries}
        stored = {}
        for subscriber_id, endpoint, create_time in rows:
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
            await session.execute(_unsubscribe_statement(site_id, [subscriber_id], reason, now))
            row = (await session.execute(_one_subscriber(site_id, subscriber_id))).first()
            return _to_subscriber(row) if row is not None else None

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
                result = await session.execute(
                    _unsubscribe_statement(site_id, subscriber_ids, reason, now).returning(
                        _COLUMNS.subscriber_id
                    )
                )
                unsubscribed += len(result.all())
        return unsubscribed

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
        after: str | None,
        limit: int,
    ) -> list[AudienceEntry]:
        """Up to `limit` members of the site's audience at `snapshot_time` with ids above
        `after`, in id order (see audience_query)."""
        query = audience_query(site_id, snapshot_time, only=only, after=after, limit=limit)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_audience_entry(row) for row in rows]


def _one_subscriber(site_id: str, subscriber_id: str) -> Select[Any]:
    return select(_TABLE).where(
        _COLUMNS.site_id == site_id, _COLUMNS.subscriber_id == subscriber_id
    )


def _to_audience_entry(row: Any) -> AudienceEntry:
    subscriber_id, endpoint, p256dh, auth, browser, timezone, profile_id, unsubscribed = row
    return AudienceEntry(
        subscriber_id,
        endpoint,
        bytes(p256dh),
        bytes(auth),
        Browser(browser),
        timezone,
        profile_id,
        bool(unsubscribed),
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
    only: Collection[str] | None = None,
    after: str | None = None,
    limit: int,
) -> Select[Any]:
    """The site's subscribers created at or before `snapshot_time` and not unsubscribed
    at or before it, with ids above `after` (and among `only` when given), in id order.

    The same keyset range scan over (site_id, subscriber_id) as page_query; the time
    conditions filter the rows the scan reads. The columns are exactly what a send needs.
    """
    conditions = [
        _COLUMNS.site_id == site_id,
        _COLUMNS.create_time <= snapshot_time,
        or_(_COLUMNS.unsubscribe_time.is_(None), _COLUMNS.unsubscribe_time > snapshot_time),
    ]
    if only is not None:
        conditions.append(_COLUMNS.subscriber_id.in_(list(only)))
    if after is not None:
        conditions.append(_COLUMNS.subscriber_id > after)
    return (
        select(
            _COLUMNS.subscriber_id,
            _COLUMNS.endpoint,
            _COLUMNS.p256dh,
            _COLUMNS.auth,
            _COLUMNS.browser,
            _COLUMNS.timezone,
            _COLUMNS.profile_id,
            _COLUMNS.unsubscribe_time.is_not(None).label("unsubscribed"),
        )
        .where(and_(*conditions))
        .order_by(_COLUMNS.subscriber_id)
        .limit(limit)
    )
