"""Persistence of the event feed: the only module that speaks SQL about it.

A feed position is (feed_xid, feed_seq) (services.segment.models.EventRow). A page is one
statement over the (site_id, feed_xid, feed_seq) index: a range scan from just after the
caller's position, in position order, bounded by the *horizon*, the first position that
may still change:

- PostgreSQL: `feed_xid < xmin` of the statement's own snapshot
  (`pg_snapshot_xmin(pg_current_snapshot())`, xid8 read as bigint). Every transaction
  below it has ended (committed or rolled back); every one that can still commit has an
  id at or above it. So the rows below the horizon are final, and whatever commits later
  sorts after every position a page has handed out.
- SQLite: no bound. Its single writer numbers rows (the rowid) and commits in one order,
  so a reader never sees a later number before an earlier one; feed_xid is 0 there.

The only dialect-specific parts are `_horizon` and `end_position`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, Text, case, func, literal, null, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from services.segment.models import EventRow, PropertyTypeRow, event_scope

_EVENTS = cast(Table, EventRow.__table__)
_E = _EVENTS.c
_TYPES = cast(Table, PropertyTypeRow.__table__)

# feed_seq never reaches it (a BIGINT / SQLite integer): the position after every row of
# one feed_xid.
MAX_SEQ = 2**63 - 1

Position = tuple[int, int]


@dataclass(frozen=True)
class ScannedRow:
    """One event the scan passed, in feed order. `wanted` says whether it is one of the
    names asked for; only then are properties read (None otherwise)."""

    position: Position
    wanted: bool
    event_id: str
    name: str
    profile_id: str | None
    subscriber_id: str | None
    occur_time: datetime
    properties: dict[str, Any] | None
    receive_time: datetime


@dataclass(frozen=True)
class Scan:
    rows: list[ScannedRow]
    # (scope, property name) -> type, for the scopes of the wanted rows' names.
    types: dict[tuple[str, str], str]


class FeedStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise RuntimeError(f"unsupported database dialect {dialect!r}")
        self._postgresql = dialect == "postgresql"

    def _horizon(self) -> Any:
        """PostgreSQL: the xmin of the running statement's snapshot, as a bigint."""
        return func.pg_snapshot_xmin(func.pg_current_snapshot()).cast(Text).cast(BigInteger)

    async def end_position(self, site_id: str) -> Position:
        """The position just before anything that is not final yet: reading after it
        gives every event whose transaction had not ended, and nothing older.

        PostgreSQL: (xmin - 1, MAX_SEQ), everything of the transactions below the
        snapshot's xmin; rows of transactions at or above it, even those committed
        already, are still to come (taking the newest visible row instead would skip a
        transaction still in flight with a smaller id). SQLite: the site's newest row.
        """
        async with self._engine.connect() as connection:
            if self._postgresql:
                xmin = (await connection.execute(select(self._horizon()))).scalar_one()
                return (int(xmin) - 1, MAX_SEQ)
            newest = (
                await connection.execute(
                    select(func.max(_E.feed_seq)).where(_E.site_id == site_id, _E.feed_xid == 0)
                )
            ).scalar_one()
        return (0, int(newest or 0))

    async def unseen_names(self, site_id: str, names: Collection[str]) -> set[str]:
        """The names among `names` that no stored event of the site has (one index
        probe each: (site_id, name, occur_time))."""
        unseen = set()
        async with self._engine.connect() as connection:
            for name in set(names):
                found = await connection.execute(
                    select(_E.feed_seq).where(_E.site_id == site_id, _E.name == name).limit(1)
                )
                if found.first() is None:
                    unseen.add(name)
        return unseen

    async def scan(
        self, site_id: str, after: Position, *, limit: int, names: Collection[str] | None
    ) -> Scan:
        """Up to `limit` of the site's final events after `after`, in feed order; with
        `names`, the others are passed over (their positions still come back)."""
        wanted = _E.name.in_(sorted(names)) if names is not None else literal(True)
        query = (
            select(
                _E.feed_xid,
                _E.feed_seq,
                wanted.label("wanted"),
                _E.event_id,
                _E.name,
                _E.profile_id,
                _E.subscriber_id,
                _E.occur_time,
                (
                    _E.properties if names is None else case((wanted, _E.properties), else_=null())
                ).label("properties"),
                _E.receive_time,
            )
            .where(
                _E.site_id == site_id,
                tuple_(_E.feed_xid, _E.feed_seq)
                > tuple_(literal(after[0], BigInteger()), literal(after[1], BigInteger())),
            )
            .order_by(_E.feed_xid, _E.feed_seq)
            .limit(limit)
        )
        if self._postgresql:
            query = query.where(_E.feed_xid < self._horizon())
        async with self._engine.connect() as connection:
            rows = [
                ScannedRow(
                    position=(int(row.feed_xid), int(row.feed_seq)),
                    wanted=bool(row.wanted),
                    event_id=row.event_id,
                    name=row.name,
                    profile_id=row.profile_id,
                    subscriber_id=row.subscriber_id,
                    occur_time=row.occur_time,
                    properties=row.properties if row.wanted else None,
                    receive_time=row.receive_time,
                )
                for row in (await connection.execute(query)).all()
            ]
            # Types are written with an event name's first properties, in the same
            # transaction: a row this statement saw has its types committed already.
            scopes = sorted({event_scope(r.name) for r in rows if r.wanted and r.properties})
            types: dict[tuple[str, str], str] = {}
            if scopes:
                found = await connection.execute(
                    select(_TYPES.c.scope, _TYPES.c.name, _TYPES.c.type).where(
                        _TYPES.c.site_id == site_id, _TYPES.c.scope.in_(scopes)
                    )
                )
                types = {(scope, name): type_ for scope, name, type_ in found.all()}
        return Scan(rows=rows, types=types)
