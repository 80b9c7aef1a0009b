"""Persistence of saved segments: the only module that speaks SQL about them.

Every function takes the caller's site id and filters on it, so another site's segment
is never read, changed or deleted. A definition is stored in its JSON form
(services.segment.definition.to_json); this module never looks inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, delete, insert, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import UTCDateTime
from services.segment.models import SegmentRow

_SEGMENTS = cast(Table, SegmentRow.__table__)
_S = _SEGMENTS.c

# The columns an update may replace (one per update_mask path).
UPDATABLE_COLUMNS = frozenset({"display_name", "description", "labels", "definition"})


@dataclass(frozen=True)
class StoredSegment:
    segment_id: str
    site_id: str
    display_name: str
    description: str
    labels: dict[str, str]
    # The JSON form of the condition tree.
    definition: dict[str, Any]
    create_time: datetime
    update_time: datetime


def _to_segment(row: Any) -> StoredSegment:
    return StoredSegment(
        segment_id=row.segment_id,
        site_id=row.site_id,
        display_name=row.display_name,
        description=row.description,
        labels=dict(row.labels or {}),
        definition=dict(row.definition),
        create_time=row.create_time,
        update_time=row.update_time,
    )


class SegmentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(self, segment: StoredSegment) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(_SEGMENTS).values(
                    segment_id=segment.segment_id,
                    site_id=segment.site_id,
                    display_name=segment.display_name,
                    description=segment.description,
                    labels=segment.labels,
                    definition=segment.definition,
                    create_time=segment.create_time,
                    update_time=segment.update_time,
                )
            )

    async def get(self, site_id: str, segment_id: str) -> StoredSegment | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(_SEGMENTS).where(_S.site_id == site_id, _S.segment_id == segment_id)
                )
            ).first()
        return None if row is None else _to_segment(row)

    async def update(
        self, site_id: str, segment_id: str, changes: Mapping[str, Any], now: datetime
    ) -> StoredSegment | None:
        """Replaces the given columns (of UPDATABLE_COLUMNS) in one statement, so two
        updates of different fields never undo each other; None when the site has no
        such segment."""
        unknown = set(changes) - UPDATABLE_COLUMNS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    update(_SEGMENTS)
                    .where(_S.site_id == site_id, _S.segment_id == segment_id)
                    .values(**changes, update_time=now)
                    .returning(*_SEGMENTS.c)
                )
            ).first()
        return None if row is None else _to_segment(row)

    async def delete(self, site_id: str, segment_id: str) -> bool:
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
                delete(_SEGMENTS)
                .where(_S.site_id == site_id, _S.segment_id == segment_id)
                .returning(_S.segment_id)
            )
            return deleted.first() is not None

    async def page(
        self, site_id: str, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[StoredSegment]:
        """Up to `limit` of the site's segments, newest first (create time, then id),
        strictly after `before` (the last one of the previous page) in that order.

        Keyset pagination over the (site_id, create_time, segment_id) index: a range
        scan read backwards, as cheap for the last page as for the first.
        """
        query = select(_SEGMENTS).where(_S.site_id == site_id)
        if before is not None:
            create_time, segment_id = before
            query = query.where(
                tuple_(_S.create_time, _S.segment_id)
                < tuple_(literal(create_time, UTCDateTime()), literal(segment_id, String()))
            )
        query = query.order_by(_S.create_time.desc(), _S.segment_id.desc()).limit(limit)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_segment(row) for row in rows]
