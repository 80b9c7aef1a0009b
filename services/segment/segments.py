"""Saved segments: named definitions a site keeps, and the check of a definition against
the property types the site has stored.

The adapter hands over definitions already read from the request and checked for shape
(services.segment.wire, services.segment.definition.check_definition); this module adds
the rules that need the site: the names' stored types, the segment's own fields, paging.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.pages import decode_page_token, encode_page_token
from services.kit.pages import page_size as bounded_page_size
from services.segment.definition import (
    RELATIVE_TIME_OPERATORS,
    All,
    AnyOf,
    Behaviour,
    Condition,
    Negate,
    PropertyOperator,
    PropertyTest,
    from_json,
    to_json,
)
from services.segment.models import (
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    PROFILE_SCOPE,
    PropertyType,
    event_scope,
)
from services.segment.segment_sql import type_keys
from services.segment.segment_store import SegmentStore, StoredSegment

log = get_logger(__name__)

# site id, the (scope, name) keys needed -> every (scope, name) type the site stores.
PropertyTypes = Callable[
    [str, Collection[tuple[str, str]]], Awaitable[Mapping[tuple[str, str], PropertyType]]
]

SEGMENT_ID_PREFIX = "seg"
MAX_LABELS = 20
MAX_LABEL_LENGTH = 64
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
UPDATABLE_PATHS = ("display_name", "description", "labels", "definition")
DEFINITION_FIELD = "segment.definition"

_SEGMENT_ID = re.compile(r"seg_[0-9a-f]{32}")
_LABEL_KEY = re.compile(rf"[a-z][a-z0-9_-]{{0,{MAX_LABEL_LENGTH - 1}}}")
_LINE_BREAK = re.compile(r"[\t\n\r]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# A page token continues after (create time in µs since the epoch, segment id).
_PAGE_POSITION = re.compile(r"(-?\d{1,18}):(seg_[0-9a-f]{32})")


@dataclass(frozen=True)
class Segment:
    segment_id: str
    display_name: str
    description: str
    labels: dict[str, str]
    definition: Condition
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class SegmentDraft:
    """A segment's fields as the adapter hands them over, not yet validated; definition
    is None when the request had none (already checked for shape when given)."""

    display_name: str = ""
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    definition: Condition | None = None


@dataclass(frozen=True)
class SegmentPage:
    segments: list[Segment]
    # Empty only on the last page (AIP-158).
    next_page_token: str


# ------------------------------------------------------------------- type checking


def _mismatch(path: str, message: str) -> InvalidArgument:
    return InvalidArgument("PROPERTY_TYPE_MISMATCH", f"{path}: {message}", field=path)


def _check_test_type(test: PropertyTest, known: str | None, path: str, what: str) -> None:
    """Refuses a property condition that cannot apply to the stored type `known` (None:
    the site has not stored the name yet, so the values' type will do)."""
    if known is None:
        return
    operator = test.operator
    if operator in (PropertyOperator.EXISTS, PropertyOperator.NOT_EXISTS):
        return
    if operator in RELATIVE_TIME_OPERATORS:
        if known != PropertyType.TIMESTAMP:
            raise _mismatch(
                f"{path}.operator",
                f"{operator.name} compares timestamps; {what} is a {known} in this site",
            )
        return
    if operator is PropertyOperator.CONTAINS:
        if known not in (PropertyType.STRING, PropertyType.STRING_LIST):
            raise _mismatch(
                f"{path}.operator",
                f"CONTAINS looks into text or a list of strings; {what} is a {known} in this site",
            )
        return
    if operator is PropertyOperator.STARTS_WITH and known != PropertyType.STRING:
        raise _mismatch(
            f"{path}.operator", f"STARTS_WITH compares text; {what} is a {known} in this site"
        )
    if known == PropertyType.STRING_LIST:
        raise _mismatch(
            f"{path}.operator",
            f"{what} is a list of strings in this site: a list is not compared whole; "
            "test for an item with CONTAINS and one string",
        )
    if test.type is not None and test.type.value != known:
        raise _mismatch(
            f"{path}.values",
            f"{what} is a {known} in this site (fixed by its first use); "
            f"the values are {test.type.value}",
        )


def check_types(
    condition: Condition,
    profile_types: Mapping[str, str],
    event_types: Mapping[tuple[str, str], str],
    path: str,
) -> None:
    """Refuses (INVALID_ARGUMENT PROPERTY_TYPE_MISMATCH naming the field) a definition
    that compares a property with values of another type than the site stores for it:
    profile_types by name for property conditions, event_types by ("event:<event name>",
    name) for a behaviour's event filters and aggregate. Names the site has not stored
    are not checked (they take the values' type)."""
    match condition:
        case All(conditions) | AnyOf(conditions):
            kind = "all" if isinstance(condition, All) else "any"
            for index, child in enumerate(conditions):
                check_types(
                    child, profile_types, event_types, f"{path}.{kind}.conditions[{index}]"
                )
        case Negate(child):
            check_types(child, profile_types, event_types, f"{path}.negate.condition")
        case PropertyTest():
            _check_test_type(
                condition,
                profile_types.get(condition.name),
                f"{path}.property",
                f"profile property {condition.name!r}",
            )
        case Behaviour():
            scope = event_scope(condition.event_name)
            for index, test in enumerate(condition.filters):
                _check_test_type(
                    test,
                    event_types.get((scope, test.name)),
                    f"{path}.behaviour.event_filters[{index}]",
                    f"property {test.name!r} of event {condition.event_name!r}",
                )
            aggregate = condition.aggregate
            if aggregate is not None:
                known = event_types.get((scope, aggregate.property))
                if known is not None and known != PropertyType.NUMBER:
                    raise _mismatch(
                        f"{path}.behaviour.aggregate.property",
                        f"an aggregate needs a number; property {aggregate.property!r} of "
                        f"event {condition.event_name!r} is a {known} in this site",
                    )


# ------------------------------------------------------------------------ validation


def _display_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise InvalidArgument(
            "MISSING_DISPLAY_NAME",
            "segment.display_name is required: a name people recognise the segment by",
            field="segment.display_name",
        )
    if len(name) > MAX_DISPLAY_NAME_LENGTH or _LINE_BREAK.search(name) or not name.isprintable():
        raise InvalidArgument(
            "INVALID_DISPLAY_NAME",
            f"segment.display_name must be one line of at most {MAX_DISPLAY_NAME_LENGTH} "
            "printable characters",
            field="segment.display_name",
        )
    return name


def _description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidArgument(
            "INVALID_DESCRIPTION",
            f"segment.description must be at most {MAX_DESCRIPTION_LENGTH} characters, "
            f"got {len(value)}",
            field="segment.description",
        )
    return value


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    path = "segment.labels"
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(
            "INVALID_LABEL", f"{path}: at most {MAX_LABELS} labels, got {len(labels)}", field=path
        )
    for key in sorted(labels):
        value = labels[key]
        if not _LABEL_KEY.fullmatch(key):
            raise InvalidArgument(
                "INVALID_LABEL",
                f"{path}: key {key[:80]!r} must be 1 to {MAX_LABEL_LENGTH} lowercase letters, "
                "digits, '_' and '-', starting with a letter",
                field=path,
            )
        if len(value) > MAX_LABEL_LENGTH or _LINE_BREAK.search(value) or not value.isprintable():
            raise InvalidArgument(
                "INVALID_LABEL",
                f"{path}[{key}]: a value is one line of at most {MAX_LABEL_LENGTH} "
                "printable characters",
                field=f"{path}[{key}]",
            )
    return dict(sorted(labels.items()))


def _missing_definition() -> InvalidArgument:
    return InvalidArgument(
        "MISSING_DEFINITION",
        f"{DEFINITION_FIELD} is required: the conditions a person must meet",
        field=DEFINITION_FIELD,
    )


def _not_found(segment_id: str, field: str) -> NotFound:
    return NotFound(
        "SEGMENT_NOT_FOUND", f"no segment {segment_id[:80]!r} in this site", field=field
    )


def _require_segment_id(segment_id: str, field: str) -> None:
    if not segment_id:
        raise InvalidArgument("MISSING_SEGMENT_ID", f"{field} is required", field=field)
    if not _SEGMENT_ID.fullmatch(segment_id):
        # Not an id this service hands out, so no segment has it.
        raise _not_found(segment_id, field)


def _to_segment(stored: StoredSegment) -> Segment:
    return Segment(
        segment_id=stored.segment_id,
        display_name=stored.display_name,
        description=stored.description,
        labels=dict(stored.labels),
        definition=from_json(stored.definition),
        create_time=stored.create_time,
        update_time=stored.update_time,
    )


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _page_position(token: str) -> tuple[datetime, str] | None:
    def parse(after: str) -> tuple[datetime, str] | None:
        match = _PAGE_POSITION.fullmatch(after)
        if match is None:
            return None
        try:
            return _EPOCH + int(match[1]) * _MICROSECOND, match[2]
        except OverflowError:
            return None

    after = decode_page_token(token, valid=parse)
    return None if after is None else parse(after)


class Segments:
    """Use cases of saved segments (CreateSegment .. ListSegments) over one store."""

    def __init__(self, store: SegmentStore, clock: Clock, property_types: PropertyTypes) -> None:
        self._store = store
        self._clock = clock
        # The site's stored property types, from the subscriber store's cache (a type
        # never changes once stored): no query per check once a site's types are known.
        self._property_types = property_types

    async def check_definition_types(
        self, site_id: str, condition: Condition, path: str = f"{DEFINITION_FIELD}.condition"
    ) -> None:
        """check_types against the site's stored types of the names the definition uses."""
        keys = set(type_keys(condition))
        stored = await self._property_types(site_id, keys)
        wanted = {key: t.value for key, t in stored.items() if key in keys}
        profile = {name: t for (scope, name), t in wanted.items() if scope == PROFILE_SCOPE}
        event = {key: t for key, t in wanted.items() if key[0] != PROFILE_SCOPE}
        check_types(condition, profile, event, path)

    async def create(self, site_id: str, draft: SegmentDraft) -> Segment:
        display_name = _display_name(draft.display_name)
        description = _description(draft.description)
        labels = _labels(draft.labels)
        if draft.definition is None:
            raise _missing_definition()
        await self.check_definition_types(site_id, draft.definition)
        now = self._clock.now()
        stored = StoredSegment(
            segment_id=new_id(SEGMENT_ID_PREFIX),
            site_id=site_id,
            display_name=display_name,
            description=description,
            labels=labels,
            definition=to_json(draft.definition),
            create_time=now,
            update_time=now,
        )
        await self._store.insert(stored)
        log.info("segment created", segment_id=stored.segment_id)
        return _to_segment(stored)

    async def get(self, site_id: str, segment_id: str, field: str = "segment_id") -> Segment:
        _require_segment_id(segment_id, field)
        stored = await self._store.get(site_id, segment_id)
        if stored is None:
            raise _not_found(segment_id, field)
        return _to_segment(stored)

    async def update(
        self, site_id: str, segment_id: str, draft: SegmentDraft, paths: Sequence[str]
    ) -> Segment:
        """Replaces the fields named in `paths` (update_mask) and nothing else."""
        _require_segment_id(segment_id, "segment.segment_id")
        if not paths:
            raise InvalidArgument(
                "INVALID_UPDATE_MASK",
                f"update_mask must name the fields to change: {', '.join(UPDATABLE_PATHS)}",
                field="update_mask",
            )
        changes: dict[str, Any] = {}
        for path in paths:
            if path == "display_name":
                changes["display_name"] = _display_name(draft.display_name)
            elif path == "description":
                changes["description"] = _description(draft.description)
            elif path == "labels":
                changes["labels"] = _labels(draft.labels)
            elif path == "definition":
                if draft.definition is None:
                    raise _missing_definition()
                await self.check_definition_types(site_id, draft.definition)
                changes["definition"] = to_json(draft.definition)
            else:
                raise InvalidArgument(
                    "INVALID_UPDATE_MASK",
                    f"update_mask path {path[:100]!r} is not a field that can change; use "
                    f"{', '.join(UPDATABLE_PATHS)}",
                    field="update_mask",
                    path=path,
                )
        stored = await self._store.update(site_id, segment_id, changes, self._clock.now())
        if stored is None:
            raise _not_found(segment_id, "segment.segment_id")
        log.info("segment updated", segment_id=segment_id, paths=",".join(sorted(changes)))
        return _to_segment(stored)

    async def delete(self, site_id: str, segment_id: str) -> None:
        _require_segment_id(segment_id, "segment_id")
        if not await self._store.delete(site_id, segment_id):
            raise _not_found(segment_id, "segment_id")
        log.info("segment deleted", segment_id=segment_id)

    async def list_page(self, site_id: str, page_size: int, page_token: str) -> SegmentPage:
        """The site's segments, newest first."""
        size = bounded_page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        before = _page_position(page_token)
        # One row more than asked tells whether another page follows, so the last page
        # already carries an empty token.
        rows = await self._store.page(site_id, before=before, limit=size + 1)
        page, more = rows[:size], len(rows) > size
        next_token = ""
        if more:
            last = page[-1]
            next_token = encode_page_token(f"{_micros(last.create_time)}:{last.segment_id}")
        return SegmentPage(segments=[_to_segment(s) for s in page], next_page_token=next_token)
