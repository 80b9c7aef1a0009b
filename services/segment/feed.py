"""The event feed (ListEventFeed): a site's events in feed order from a cursor the
consumer keeps, so a consumer that stores each next_cursor sees every event exactly once,
across restarts of either side.

A cursor is an opaque token of a feed position (feed_xid, feed_seq); the store only
hands out final positions (see services.segment.feed_store), so the cursor never passes
an event that could still appear. docs/services/segment.md, "The event feed", says why
this holds on PostgreSQL, where transactions commit out of the order their rows were
numbered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.errors import InvalidArgument
from services.kit.pages import decode_page_token, encode_page_token
from services.kit.pages import page_size as bounded_page_size
from services.segment.domain import TypedValue, from_json
from services.segment.feed_store import MAX_SEQ, FeedStore, Position, ScannedRow
from services.segment.models import event_scope

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000
# A page with an event_names filter looks at up to this many events (the ones passed
# over move the cursor too), so a rare name is not searched for from far back each time.
FILTERED_SCAN = 5000

_POSITION = re.compile(r"([0-9]{1,19}):([0-9]{1,19})")
_START: Position = (0, 0)


@dataclass(frozen=True)
class FeedEvent:
    event_id: str
    name: str
    profile_id: str
    subscriber_id: str
    occur_time: datetime
    # By name; a value whose stored type is unknown is left out.
    properties: tuple[tuple[str, TypedValue], ...]
    receive_time: datetime


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    next_cursor: str


def encode_cursor(position: Position) -> str:
    return encode_page_token(f"{position[0]}:{position[1]}")


def _is_position(text: str) -> bool:
    match = _POSITION.fullmatch(text)
    return match is not None and all(int(part) <= MAX_SEQ for part in match.groups())


def decode_cursor(cursor: str) -> Position | None:
    """The position a cursor stands for; None for an empty one."""
    try:
        text = decode_page_token(cursor, valid=_is_position)
    except InvalidArgument:
        raise InvalidArgument(
            "INVALID_CURSOR",
            "cursor is not one this service returned; pass a next_cursor unchanged, or "
            "empty to start",
            field="cursor",
        ) from None
    if text is None:
        return None
    xid, seq = text.split(":")
    return (int(xid), int(seq))


def _to_event(row: ScannedRow, types: dict[tuple[str, str], str]) -> FeedEvent:
    scope = event_scope(row.name)
    properties = []
    for name in sorted(row.properties or {}):
        value = from_json(types.get((scope, name)), (row.properties or {})[name])
        if value is not None:
            properties.append((name, value))
    return FeedEvent(
        event_id=row.event_id,
        name=row.name,
        profile_id=row.profile_id or "",
        subscriber_id=row.subscriber_id or "",
        occur_time=row.occur_time,
        properties=tuple(properties),
        receive_time=row.receive_time,
    )


class EventFeed:
    """ListEventFeed over one store."""

    def __init__(self, store: FeedStore) -> None:
        self._store = store

    async def unseen_names(self, site_id: str, names: Sequence[str]) -> list[str]:
        """The given names no event of the site has had, in the order given."""
        unseen = await self._store.unseen_names(site_id, names)
        return [name for name in dict.fromkeys(names) if name in unseen]

    async def page(
        self,
        site_id: str,
        cursor: str,
        page_size: int,
        event_names: Sequence[str] = (),
        *,
        start_at_end: bool = False,
    ) -> FeedPage:
        """The events after `cursor` (empty: from the site's first event, or with
        start_at_end from the end of what is final now) and the cursor to continue
        from. The cursor moves past every event the page looked at, the ones an
        event_names filter passed over included; it stays put when there was none."""
        size = bounded_page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        after = decode_cursor(cursor)
        if after is None:
            after = await self._store.end_position(site_id) if start_at_end else _START
        names = frozenset(event_names) or None
        scan = await self._store.scan(
            site_id, after, limit=size if names is None else max(size, FILTERED_SCAN), names=names
        )
        taken: list[ScannedRow] = []
        position = after
        for row in scan.rows:
            if row.wanted:
                if len(taken) == size:
                    break
                taken.append(row)
            position = row.position
        return FeedPage(
            events=[_to_event(row, scan.types) for row in taken],
            next_cursor=encode_cursor(position),
        )
