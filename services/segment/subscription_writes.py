"""The one bulk write of subscriptions, shared by registration (store.py) and import
(import_store.py): upsert the rows, record `Subscribed` for each subscriber created, and
create the profiles the rows name — in the caller's transaction.

PostgreSQL, a batch of up to STAGED_BATCH - 1 rows (registrations, a few dozen at a time):
each statement gets the whole batch as one JSON text (json_to_recordset), one parameter
whatever the batch size, parsed by the server in C. Binding a dozen arrays or a list of
dicts per row cost the client more than the database spent storing them (a registration
batch of 1,000 spent 80 % of its CPU in parameter processing).

PostgreSQL, a larger batch (imports, 1,000 rows a message): binary COPY into a session's
temporary staging table (psycopg encodes each row in C: no JSON text, no base64, no dict
per row), then one statement upserts the rows, records `Subscribed` for those it inserted
and creates the named profiles (data-modifying CTEs). Per row that is ~12 µs less Python
and a third less database time than the JSON statements; per batch it costs a COPY and
the staging table's truncation at commit, which made a batch of 32 dearer than by JSON
(docs/services/segment.md has the figures).

SQLite runs one compiled statement with a list of rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import psycopg
from psycopg.adapt import PyFormat
from psycopg.pq import Format
from sqlalchemy import Row, Table, bindparam, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.db import UTCDateTime
from services.segment.models import EventRow, ProfileRow, SubscriberRow

_TABLE = cast(Table, SubscriberRow.__table__)
_COLUMNS = _TABLE.c
_PROFILES = cast(Table, ProfileRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)

SUBSCRIBED_EVENT = "Subscribed"

# What a written row sets; the rest (site, update time) is the same for a batch.
ROW_VALUES = (
    "subscriber_id", "endpoint", "p256dh", "auth", "browser", "timezone", "profile_id",
    "vapid_key_id", "state", "unsubscribe_reason", "unsubscribe_time", "create_time",
    "apns_topic",
)  # fmt: skip
# An existing row is updated with every written column but its id and create time:
# create_time stays what the first registration (or import) stored.
_UPDATED = [name for name in ROW_VALUES if name not in ("subscriber_id", "create_time")]


@dataclass(slots=True)  # not frozen: a frozen init costs ~3 µs a row, slots 0.4
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
    # Legacy Safari: the Website Push ID (`endpoint` is then the APNs device token).
    apns_topic: str | None = None


def subscribed_event_id(subscriber_id: str) -> str:
    # A subscriber is created once: a retried or repeated registration finds the row
    # and creates nothing, so this id is written at most once. No other event can hold
    # it: a site's event ids never start with "clarion:" (domain.RESERVED_EVENT_ID_PREFIX),
    # and the subscriber id is new. So PostgreSQL inserts `Subscribed` without ON
    # CONFLICT: a speculative insertion (probe both unique indexes first, confirm after)
    # cost a third of the event's insert (20 against 13.7 µs a row).
    return f"clarion:subscribed:{subscriber_id}"


_RECORD = (
    "subscriber_id varchar, endpoint varchar, p256dh text, auth text, browser varchar, "
    "timezone varchar, profile_id varchar, vapid_key_id varchar, state varchar, "
    "unsubscribe_reason varchar, unsubscribe_time timestamptz, create_time timestamptz, "
    "apns_topic varchar"
)
_POSTGRESQL_UPSERT = (
    text(
        "INSERT INTO segment_subscribers (subscriber_id, endpoint, p256dh, auth, browser, "
        "timezone, profile_id, vapid_key_id, state, unsubscribe_reason, unsubscribe_time, "
        "create_time, apns_topic, site_id, update_time) "
        "SELECT r.subscriber_id, r.endpoint, decode(r.p256dh, 'base64'), decode(r.auth, 'base64'), "
        "r.browser, r.timezone, r.profile_id, r.vapid_key_id, r.state, r.unsubscribe_reason, "
        "r.unsubscribe_time, r.create_time, r.apns_topic, :site_id, :now "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({_RECORD}) "
        "ON CONFLICT (site_id, endpoint) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in (*_UPDATED, "update_time"))
        + " RETURNING subscriber_id, endpoint, create_time"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(create_time=UTCDateTime())
)
_POSTGRESQL_SUBSCRIBED_EVENTS = text(
    "INSERT INTO segment_events (site_id, event_id, name, profile_id, subscriber_id, "
    "occur_time, properties, receive_time) "
    "SELECT :site_id, r.event_id, :name, r.profile_id, r.subscriber_id, r.occur_time, "
    "'{}'::jsonb, :now FROM json_to_recordset(CAST(:rows AS json)) "
    "AS r(event_id varchar, profile_id varchar, subscriber_id varchar, occur_time timestamptz)"
).bindparams(bindparam("now", type_=UTCDateTime()))
_POSTGRESQL_PROFILES = text(
    "INSERT INTO segment_profiles (site_id, profile_id, properties, test_profile, "
    "create_time, update_time) "
    "SELECT :site_id, n.id, '{}'::jsonb, false, :now, :now "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS n(id) ON CONFLICT DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))


# Batches of at least this many rows go by COPY and the staging table.
STAGED_BATCH = 200

# The staging table: a session's own (temporary, not WAL-logged), created in the writing
# transaction when missing, so the write works on any connection, and emptied by a
# truncation at the commit (ON COMMIT DELETE ROWS: a DELETE would leave dead rows that
# nothing vacuums in a temporary table, and every later batch would read them). One
# write per transaction.
_STAGE = "clarion_subscription_stage"
_CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ("
    "subscriber_id varchar, endpoint varchar, p256dh bytea, auth bytea, browser varchar, "
    "timezone varchar, profile_id varchar, vapid_key_id varchar, state varchar, "
    "unsubscribe_reason varchar, unsubscribe_time timestamptz, create_time timestamptz, "
    "apns_topic varchar) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY {_STAGE} ({', '.join(ROW_VALUES)}) FROM STDIN (FORMAT BINARY)"
_STAGE_TYPES = (
    "varchar", "varchar", "bytea", "bytea", "varchar", "varchar", "varchar", "varchar",
    "varchar", "varchar", "timestamptz", "timestamptz", "varchar",
)  # fmt: skip
# One statement for the staged batch: the upsert in endpoint order (two overlapping
# batches lock their rows in one order), `Subscribed` for each row it inserted (xmax = 0:
# an update by ON CONFLICT leaves its lock's xid there; a concurrent writer may have won
# the insert), and the profiles the rows name (as after Identify, so GetProfile finds
# them). The rows come back as the upsert returns them, with whether each was inserted.
def _subscribed_and_profiles(inserted: str, named: str) -> str:
    """The CTEs both staged statements end with: `Subscribed` for each row of
    `inserted` (rows of a CTE, with a filter), in endpoint order, and the profiles
    `named` rows name."""
    return (
        "subscribed AS (INSERT INTO segment_events (site_id, event_id, name, profile_id, "
        "subscriber_id, occur_time, properties, receive_time) "
        "SELECT :site_id, :event_prefix || r.subscriber_id, :name, r.profile_id, "
        f"r.subscriber_id, r.create_time, '{{}}'::jsonb, :now FROM {inserted} "
        "ORDER BY r.endpoint), "
        "profiles AS (INSERT INTO segment_profiles (site_id, profile_id, properties, "
        "test_profile, create_time, update_time) "
        "SELECT DISTINCT :site_id, profile_id, '{}'::jsonb, false, :now, :now "
        f"FROM {named} WHERE profile_id <> '' ORDER BY 2 ON CONFLICT DO NOTHING) "
    )


_POSTGRESQL_WRITE = (
    text(
        "WITH up AS ("
        f"INSERT INTO segment_subscribers ({', '.join(ROW_VALUES)}, site_id, update_time) "
        f"SELECT {', '.join(ROW_VALUES)}, :site_id, :now FROM {_STAGE} ORDER BY endpoint "
        "ON CONFLICT (site_id, endpoint) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in (*_UPDATED, "update_time"))
        + " RETURNING subscriber_id, endpoint, create_time, profile_id, xmax = 0 AS inserted), "
        + _subscribed_and_profiles("up AS r WHERE r.inserted", _STAGE)
        + "SELECT subscriber_id, endpoint, create_time, inserted FROM up"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(create_time=UTCDateTime())
)
# Insert-first (imports, whose rows are mostly new): the staged rows, all offered as new
# subscribers, inserted where the site has no such endpoint yet, with `Subscribed` and
# the named profiles for those inserted; the endpoints inserted come back. A row whose
# endpoint exists is left alone (DO NOTHING takes no lock on it) for the caller to
# compare and merge. A fresh import so skips reading the site's rows first.
_POSTGRESQL_INSERT_NEW = text(
    "WITH ins AS ("
    f"INSERT INTO segment_subscribers ({', '.join(ROW_VALUES)}, site_id, update_time) "
    f"SELECT {', '.join(ROW_VALUES)}, :site_id, :now FROM {_STAGE} ORDER BY endpoint "
    "ON CONFLICT (site_id, endpoint) DO NOTHING "
    "RETURNING subscriber_id, endpoint, create_time, profile_id), "
    + _subscribed_and_profiles("ins AS r", "ins")
    + "SELECT endpoint FROM ins"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _sqlite_upsert() -> Any:
    statement = sqlite.insert(_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["site_id", "endpoint"],
        set_={**{name: statement.excluded[name] for name in _UPDATED},
              "update_time": statement.excluded.update_time},
    ).returning(_COLUMNS.subscriber_id, _COLUMNS.endpoint, _COLUMNS.create_time)  # fmt: skip


_SQLITE_UPSERT = _sqlite_upsert()
_SQLITE_EVENTS = sqlite.insert(_EVENTS).on_conflict_do_nothing()
_SQLITE_PROFILES = sqlite.insert(_PROFILES).on_conflict_do_nothing()


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
        "apns_topic": write.apns_topic,
    }


async def write_subscriptions(
    connection: AsyncConnection, site_id: str, writes: Sequence[SubscriptionWrite], now: datetime
) -> tuple[list[Row[Any]], list[SubscriptionWrite]]:
    """Upserts the rows (distinct endpoints) in endpoint order, so two overlapping
    batches lock their rows in one order and cannot deadlock each other.

    INSERT .. ON CONFLICT (site_id, endpoint): two concurrent writes of one endpoint
    cannot both insert. A write was created when its row came back with the id offered
    for it (a concurrent one may have won the insert; the staged path asks PostgreSQL
    whether it inserted the row, which is the same for every write but an update whose
    row vanished meanwhile); `Subscribed`, occurring at the write's create time, is
    recorded for exactly those. Returns the stored rows (subscriber_id, endpoint,
    create_time first) and the writes that created a subscriber. One call per
    transaction (the staging table is emptied at the commit).
    """
    if not writes:
        return [], []
    ordered = sorted(writes, key=lambda write: write.endpoint)
    postgresql = connection.dialect.name == "postgresql"
    if postgresql and len(ordered) >= STAGED_BATCH:
        await _stage(connection, ordered)
        rows = (
            await connection.execute(
                _POSTGRESQL_WRITE,
                {"site_id": site_id, "now": now, "name": SUBSCRIBED_EVENT,
                 "event_prefix": subscribed_event_id("")},
            )
        ).all()  # fmt: skip
        offered = {w.subscriber_id: w for w in ordered}
        return rows, [offered[row[0]] for row in rows if row[3]]
    if postgresql:
        return await _write_json(connection, site_id, ordered, now)
    rows = (
        await connection.execute(
            _SQLITE_UPSERT,
            [{"site_id": site_id, "update_time": now,
              **{name: getattr(w, name) for name in ROW_VALUES}}
             for w in ordered],
        )
    ).all()  # fmt: skip
    offered = {w.subscriber_id: w for w in ordered if w.new}
    created = [offered[row.subscriber_id] for row in rows if row.subscriber_id in offered]
    profile_ids = sorted({w.profile_id for w in ordered if w.profile_id})
    if created:
        await connection.execute(
            _SQLITE_EVENTS,
            [
                {"site_id": site_id, "event_id": subscribed_event_id(w.subscriber_id),
                 "name": SUBSCRIBED_EVENT, "profile_id": w.profile_id,
                 "subscriber_id": w.subscriber_id, "occur_time": w.create_time,
                 "properties": {}, "receive_time": now}
                for w in created
            ],
        )  # fmt: skip
    if profile_ids:
        await connection.execute(
            _SQLITE_PROFILES,
            [
                {"site_id": site_id, "profile_id": profile_id, "properties": {},
                 "test_profile": False, "create_time": now, "update_time": now}
                for profile_id in profile_ids
            ],
        )  # fmt: skip
    return rows, created


async def insert_new_subscriptions(
    connection: AsyncConnection, site_id: str, writes: Sequence[SubscriptionWrite], now: datetime
) -> set[str]:
    """PostgreSQL only: inserts the writes (distinct endpoints, each a new subscriber
    with a fresh id) whose endpoint the site does not have, in endpoint order, with
    `Subscribed` and the named profiles for each; returns the endpoints inserted. The
    others are untouched and not locked. One call per transaction, as write_subscriptions
    (the staging table).

    Against a concurrent writer of the same endpoint, DO NOTHING waits for its insert to
    commit or roll back, so an endpoint not returned is one a later statement of this
    transaction sees."""
    if not writes:
        return set()
    ordered = sorted(writes, key=lambda write: write.endpoint)
    await _stage(connection, ordered)
    rows = await connection.execute(
        _POSTGRESQL_INSERT_NEW,
        {"site_id": site_id, "now": now, "name": SUBSCRIBED_EVENT,
         "event_prefix": subscribed_event_id("")},
    )  # fmt: skip
    return {row[0] for row in rows}


# psycopg's own (C) dumper of bytes. COPY's set_types picks a dumper by type oid, and for
# bytea that is psycopg.dbapi20's subclass, which adds a Python call per value.
_BYTES_DUMPER = psycopg.adapters.get_dumper(bytes, PyFormat.BINARY)
_BYTEA_OID = psycopg.adapters.types["bytea"].oid


async def _stage(connection: AsyncConnection, writes: Sequence[SubscriptionWrite]) -> None:
    """The writes into the (empty) staging table by binary COPY, in the transaction."""
    await connection.exec_driver_sql(_CREATE_STAGE)
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if driver.adapters.get_dumper_by_oid(_BYTEA_OID, Format.BINARY) is not _BYTES_DUMPER:
        driver.adapters.register_dumper(bytes, _BYTES_DUMPER)  # this connection's only
    async with driver.cursor() as cursor, cursor.copy(_COPY_STAGE) as copy:
        copy.set_types(_STAGE_TYPES)
        write_row = copy.write_row
        for w in writes:
            await write_row(
                (w.subscriber_id, w.endpoint, w.p256dh, w.auth, w.browser, w.timezone,
                 w.profile_id, w.vapid_key_id, w.state, w.unsubscribe_reason,
                 w.unsubscribe_time, w.create_time, w.apns_topic)
            )  # fmt: skip


async def _write_json(
    connection: AsyncConnection, site_id: str, ordered: Sequence[SubscriptionWrite], now: datetime
) -> tuple[list[Row[Any]], list[SubscriptionWrite]]:
    """PostgreSQL, a small batch: each statement with the batch as one JSON text."""
    rows = (
        await connection.execute(
            _POSTGRESQL_UPSERT,
            {"site_id": site_id, "now": now,
             "rows": orjson.dumps([_json_row(w) for w in ordered]).decode()},
        )
    ).all()  # fmt: skip
    offered = {w.subscriber_id: w for w in ordered if w.new}
    created = [offered[row.subscriber_id] for row in rows if row.subscriber_id in offered]
    if created:
        events = [
            {"event_id": subscribed_event_id(w.subscriber_id), "profile_id": w.profile_id,
             "subscriber_id": w.subscriber_id, "occur_time": w.create_time.isoformat()}
            for w in created
        ]  # fmt: skip
        await connection.execute(
            _POSTGRESQL_SUBSCRIBED_EVENTS,
            {"site_id": site_id, "now": now, "name": SUBSCRIBED_EVENT,
             "rows": orjson.dumps(events).decode()},
        )  # fmt: skip
    # A subscriber written with a profile id belongs to that profile (as after
    # Identify): make sure the profile exists, so GetProfile finds it.
    profile_ids = sorted({w.profile_id for w in ordered if w.profile_id})
    if profile_ids:
        await connection.execute(
            _POSTGRESQL_PROFILES,
            {"site_id": site_id, "now": now, "ids": json.dumps(profile_ids)},
        )
    return rows, created
