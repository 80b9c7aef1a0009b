"""Live campaign triggers: checking a Trigger message, and matching events against it.

Pure: no database, no clock (`now` is passed in). An event filter is a segment
PropertyCondition applied to one event's properties, as a behaviour condition's
event_filters are (clarion/segment/v1/segment.proto): every filter is true or false,
never unknown; a property the event lacks makes every operator false except
NOT_EXISTS, and a property of another type than the filter's values is false
(NOT_EQUALS too). A list of strings is only looked into, by CONTAINS. Timestamps
compare as instants, whatever zone they were written in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from google.protobuf import timestamp_pb2

from clarion.campaign.v1 import campaign_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2
from services.kit.errors import InvalidArgument

MAX_EVENT_NAME_LENGTH = 128
MAX_PROPERTY_NAME_LENGTH = 64
MAX_FILTERS = 20
MAX_IN_VALUES = 1000
MAX_DAYS = 36_500
MIN_WINDOW = timedelta(seconds=60)
MAX_WINDOW = timedelta(days=30)
MAX_OFFSET = timedelta(days=366)
MAX_COOLDOWN = timedelta(days=30)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
# The property names segment stores (TrackEvents refuses any other).
_PROPERTY_NAME = re.compile(rf"[A-Za-z0-9_ .\-]{{1,{MAX_PROPERTY_NAME_LENGTH}}}")

# An event property's value: text, a (finite) number, a boolean, an aware UTC
# timestamp, or a list of strings.
EventValue = str | float | bool | datetime | tuple[str, ...]


class Operator(StrEnum):
    """segment.v1.PropertyOperator; the value is the stored (JSON) form."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"
    BETWEEN = "between"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"
    WITHIN_LAST_DAYS = "within_last_days"
    MORE_THAN_DAYS_AGO = "more_than_days_ago"
    WITHIN_NEXT_DAYS = "within_next_days"


RELATIVE_OPERATORS = frozenset(
    {Operator.WITHIN_LAST_DAYS, Operator.MORE_THAN_DAYS_AGO, Operator.WITHIN_NEXT_DAYS}
)
_ORDERED = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN, Operator.BETWEEN})
_TEXT_ONLY = frozenset({Operator.CONTAINS, Operator.STARTS_WITH})
_NO_VALUES = frozenset({Operator.EXISTS, Operator.NOT_EXISTS, *RELATIVE_OPERATORS})
_OPERATOR_FROM_PROTO: dict[int, Operator] = {
    segment_pb2.PropertyOperator.Value(f"PROPERTY_OPERATOR_{operator.name}"): operator
    for operator in Operator
}
_OPERATOR_TO_PROTO = {operator: number for number, operator in _OPERATOR_FROM_PROTO.items()}
_TYPE_NAMES: dict[type, str] = {
    str: "string",
    float: "number",
    bool: "boolean",
    datetime: "timestamp",
}


@dataclass(frozen=True)
class EventFilter:
    """A checked condition on one event property. `values` all have one type (str,
    float, bool or aware UTC datetime), as many as the operator takes; IN's are
    distinct. `days` is set (1..MAX_DAYS) exactly for the relative time operators."""

    name: str
    operator: Operator
    values: tuple[EventValue, ...] = ()
    days: int = 0


@dataclass(frozen=True)
class Inaction:
    """Push `window` after the triggering event unless the person did `event_name`
    (passing `filters`) meanwhile."""

    event_name: str
    filters: tuple[EventFilter, ...]
    window: timedelta
    keep_first_wait: bool = False


@dataclass(frozen=True)
class DateReminder:
    """Push at the triggering event's timestamp property `property`, plus `offset`
    (negative: before)."""

    property: str
    offset: timedelta


@dataclass(frozen=True)
class Trigger:
    """A checked trigger. All datetimes are timezone-aware UTC."""

    event_name: str
    filters: tuple[EventFilter, ...]
    wait: Inaction | DateReminder | None
    person_cooldown: timedelta  # timedelta(0): none
    start_time: datetime
    end_time: datetime | None = None


# Reading and writing.


def trigger_from_proto(
    message: campaign_pb2.Trigger | None, now: datetime, *, field: str = "trigger"
) -> Trigger | None:
    """The checked trigger, or None when the message is unset (or all defaults). `now`
    (aware) is when the campaign is created or its trigger changed: a trigger without
    start_time acts on events from then, and its end_time must be after it."""
    _require_aware(now, "now")
    if message is None or message == campaign_pb2.Trigger():
        return None
    event_name = _checked_event_name(message.event_name, f"{field}.event_name")
    filters = _checked_filters(message.event_filters, f"{field}.event_filters")
    wait: Inaction | DateReminder | None = None
    kind = message.WhichOneof("wait")
    if kind == "inaction":
        wait = _checked_inaction(message.inaction, event_name, filters, f"{field}.inaction")
    elif kind == "date_reminder":
        wait = _checked_reminder(message.date_reminder, f"{field}.date_reminder")
    cooldown = message.person_cooldown_seconds
    if not 0 <= cooldown <= _seconds(MAX_COOLDOWN):
        raise InvalidArgument(
            "INVALID_COOLDOWN",
            f"person_cooldown_seconds must be 0 (no cooldown) to {_seconds(MAX_COOLDOWN)} "
            f"(30 days), got {cooldown}",
            field=f"{field}.person_cooldown_seconds",
        )
    start = (
        _instant(message.start_time, f"{field}.start_time")
        if message.HasField("start_time")
        else now.astimezone(UTC)
    )
    end: datetime | None = None
    if message.HasField("end_time"):
        end_path = f"{field}.end_time"
        end = _instant(message.end_time, end_path)
        if end <= start:
            raise InvalidArgument(
                "INVALID_END_TIME",
                f"end_time ({_iso(end)}) must be after the start ({_iso(start)})",
                field=end_path,
            )
        if end <= now:
            raise InvalidArgument(
                "INVALID_END_TIME",
                f"end_time ({_iso(end)}) has passed (now is {_iso(now)}); give a later time "
                "or none",
                field=end_path,
            )
    return Trigger(
        event_name=event_name,
        filters=filters,
        wait=wait,
        person_cooldown=timedelta(seconds=cooldown),
        start_time=start,
        end_time=end,
    )


def trigger_to_proto(trigger: Trigger) -> campaign_pb2.Trigger:
    message = campaign_pb2.Trigger(
        event_name=trigger.event_name,
        event_filters=[_filter_to_proto(f) for f in trigger.filters],
        person_cooldown_seconds=_seconds(trigger.person_cooldown),
        start_time=_timestamp(trigger.start_time),
    )
    if trigger.end_time is not None:
        message.end_time.CopyFrom(_timestamp(trigger.end_time))
    wait = trigger.wait
    if isinstance(wait, Inaction):
        message.inaction.CopyFrom(
            campaign_pb2.Inaction(
                event_name=wait.event_name,
                event_filters=[_filter_to_proto(f) for f in wait.filters],
                window_seconds=_seconds(wait.window),
                keep_first_wait=wait.keep_first_wait,
            )
        )
    elif isinstance(wait, DateReminder):
        message.date_reminder.CopyFrom(
            campaign_pb2.DateReminder(property=wait.property, offset_seconds=_seconds(wait.offset))
        )
    return message


def trigger_to_json(trigger: Trigger) -> str:
    wait = trigger.wait
    stored_wait: dict[str, Any] | None = None
    if isinstance(wait, Inaction):
        stored_wait = {
            "inaction": {
                "event": wait.event_name,
                "filters": [_filter_to_json(f) for f in wait.filters],
                "window": _seconds(wait.window),
                "keep_first": wait.keep_first_wait,
            }
        }
    elif isinstance(wait, DateReminder):
        stored_wait = {"reminder": {"property": wait.property, "offset": _seconds(wait.offset)}}
    return json.dumps(
        {
            "event": trigger.event_name,
            "filters": [_filter_to_json(f) for f in trigger.filters],
            "wait": stored_wait,
            "cooldown": _seconds(trigger.person_cooldown),
            "start": _iso(trigger.start_time),
            "end": _iso(trigger.end_time) if trigger.end_time is not None else None,
        },
        separators=(",", ":"),
    )


def trigger_from_json(text: str) -> Trigger:
    """A trigger stored by trigger_to_json (trusted: it was checked when stored)."""
    data = json.loads(text)
    stored_wait = data.get("wait") or {}
    wait: Inaction | DateReminder | None = None
    if "inaction" in stored_wait:
        inaction = stored_wait["inaction"]
        wait = Inaction(
            event_name=inaction["event"],
            filters=tuple(_filter_from_json(f) for f in inaction.get("filters", ())),
            window=timedelta(seconds=inaction["window"]),
            keep_first_wait=bool(inaction.get("keep_first", False)),
        )
    elif "reminder" in stored_wait:
        reminder = stored_wait["reminder"]
        wait = DateReminder(
            property=reminder["property"], offset=timedelta(seconds=reminder["offset"])
        )
    end = data.get("end")
    return Trigger(
        event_name=data["event"],
        filters=tuple(_filter_from_json(f) for f in data.get("filters", ())),
        wait=wait,
        person_cooldown=timedelta(seconds=data.get("cooldown", 0)),
        start_time=_from_iso(data["start"]),
        end_time=_from_iso(end) if end is not None else None,
    )


def event_names(trigger: Trigger) -> tuple[str, ...]:
    """The events the trigger reads: its own and its inaction event, distinct, sorted."""
    names = {trigger.event_name}
    if isinstance(trigger.wait, Inaction):
        names.add(trigger.wait.event_name)
    return tuple(sorted(names))


# Events.


def event_value(value: profile_pb2.PropertyValue) -> EventValue | None:
    """The value an event property holds; None when no kind is set (or a timestamp is
    out of datetime's range)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return float(value.number_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "timestamp_value":
        try:
            return _from_timestamp(value.timestamp_value)
        except OverflowError:
            return None
    if kind == "string_list_value":
        return tuple(value.string_list_value.values)
    return None


def property_value(value: EventValue) -> profile_pb2.PropertyValue:
    """An event property's value as the contracts carry it (event_value's inverse)."""
    if isinstance(value, bool):
        return profile_pb2.PropertyValue(bool_value=value)
    if isinstance(value, str):
        return profile_pb2.PropertyValue(string_value=value)
    if isinstance(value, datetime):
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(value)
        return profile_pb2.PropertyValue(timestamp_value=stamp)
    if isinstance(value, tuple):
        return profile_pb2.PropertyValue(
            string_list_value=profile_pb2.StringList(values=list(value))
        )
    return profile_pb2.PropertyValue(number_value=float(value))


def event_properties_json(properties: Mapping[str, EventValue], names: Collection[str]) -> str:
    """The named properties of a triggering event as kept until its push (a wait, a
    run's listed recipient): compact typed JSON, "" when it has none of them."""
    kept: dict[str, list[Any]] = {}
    for name in sorted(names):
        value = properties.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            kept[name] = ["b", value]
        elif isinstance(value, str):
            kept[name] = ["s", value]
        elif isinstance(value, datetime):
            kept[name] = ["t", value.isoformat()]
        elif isinstance(value, tuple):
            kept[name] = ["l", list(value)]
        else:
            kept[name] = ["n", float(value)]
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":")) if kept else ""


def event_properties_from_json(text: str) -> dict[str, EventValue]:
    if not text:
        return {}
    values: dict[str, EventValue] = {}
    for name, (kind, value) in json.loads(text).items():
        if kind == "t":
            values[name] = datetime.fromisoformat(value)
        elif kind == "l":
            values[name] = tuple(value)
        else:
            values[name] = value
    return values


def matches(
    filters: Sequence[EventFilter], properties: Mapping[str, EventValue], now: datetime
) -> bool:
    """Whether an event's properties meet every filter; the relative time operators
    count from `now` (aware)."""
    _require_aware(now, "now")
    return all(_holds(f, properties, now) for f in filters)


def reminder_time(reminder: DateReminder, properties: Mapping[str, EventValue]) -> datetime | None:
    """When the reminder for an event with these properties is due (aware UTC); None
    when the event lacks the property, it is not a timestamp, or the time would lie
    outside the years 1 to 9999."""
    value = properties.get(reminder.property)
    if not isinstance(value, datetime):
        return None
    try:
        return _utc(value) + reminder.offset
    except OverflowError:
        return None


def _holds(test: EventFilter, properties: Mapping[str, EventValue], now: datetime) -> bool:
    operator = test.operator
    value = properties.get(test.name)
    if value is None:
        return operator is Operator.NOT_EXISTS
    if operator is Operator.EXISTS:
        return True
    if operator is Operator.NOT_EXISTS:
        return False
    if operator is Operator.CONTAINS:
        needle = test.values[0]
        if isinstance(value, str):
            return isinstance(needle, str) and needle in value
        if isinstance(value, tuple | list):
            return needle in value
        return False
    kind = _kind(value)
    if kind is None:
        return False  # a list is only looked into (CONTAINS)
    scalar = _normalised(value)
    if operator in RELATIVE_OPERATORS:
        if not isinstance(scalar, datetime):
            return False
        span = timedelta(days=test.days)
        if operator is Operator.WITHIN_LAST_DAYS:
            return _shifted(now, -span) <= scalar <= now
        if operator is Operator.MORE_THAN_DAYS_AGO:
            return scalar < _shifted(now, -span)
        return now <= scalar <= _shifted(now, span)
    if kind is not _kind(test.values[0]):
        return False
    first: Any = test.values[0]
    match operator:
        case Operator.EQUALS:
            return bool(scalar == first)
        case Operator.NOT_EQUALS:
            return bool(scalar != first)
        case Operator.IN:
            return scalar in test.values
        case Operator.STARTS_WITH:
            return isinstance(scalar, str) and scalar.startswith(first)
        case Operator.GREATER_THAN:
            return bool(scalar > first)
        case Operator.LESS_THAN:
            return bool(scalar < first)
        case Operator.BETWEEN:
            return bool(first <= scalar <= test.values[1])  # type: ignore[operator]
    return False


def _kind(value: object) -> type | None:
    """The type a scalar value compares as; None for a list (or anything else)."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, datetime):
        return datetime
    return None


def _type_name(kind: type | None) -> str:
    return _TYPE_NAMES[kind] if kind is not None else "list"


def _normalised(value: Any) -> Any:
    """Aware datetimes compare as instants, whatever their zone; a naive one is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# Checks.


def _checked_event_name(name: str, path: str) -> str:
    if not name.strip():
        raise InvalidArgument(
            "MISSING_EVENT_NAME", "name the event, e.g. 'Added To Cart'", field=path
        )
    if len(name) > MAX_EVENT_NAME_LENGTH or not name.isprintable():
        raise InvalidArgument(
            "INVALID_EVENT_NAME",
            f"an event name is one line of at most {MAX_EVENT_NAME_LENGTH} characters, "
            "as TrackEvents takes it",
            field=path,
        )
    return name


def _checked_filters(
    messages: Sequence[segment_pb2.PropertyCondition], path: str
) -> tuple[EventFilter, ...]:
    if len(messages) > MAX_FILTERS:
        raise InvalidArgument(
            "DEFINITION_TOO_LARGE",
            f"at most {MAX_FILTERS} event filters, got {len(messages)}",
            field=path,
        )
    return tuple(_checked_filter(m, f"{path}[{index}]") for index, m in enumerate(messages))


def _checked_filter(message: segment_pb2.PropertyCondition, path: str) -> EventFilter:
    def invalid(at: str, problem: str) -> InvalidArgument:
        return InvalidArgument("INVALID_CONDITION", problem, field=f"{path}.{at}")

    name = message.name
    if not name:
        raise invalid("name", "name the event property the filter looks at")
    if not _PROPERTY_NAME.fullmatch(name):
        raise invalid(
            "name",
            f"an event property name is 1 to {MAX_PROPERTY_NAME_LENGTH} characters of "
            "letters, digits, space, '_', '.' and '-'",
        )
    operator = _OPERATOR_FROM_PROTO.get(message.operator)
    if operator is None:
        raise InvalidArgument(
            "UNKNOWN_OPERATOR",
            f"choose an operator ({', '.join(o.name for o in Operator)})",
            field=f"{path}.operator",
        )
    values = tuple(
        _checked_value(given, f"{path}.values[{index}]")
        for index, given in enumerate(message.values)
    )
    count = len(values)
    if operator in _NO_VALUES:
        if count:
            raise invalid("values", f"{operator.name} takes no values, got {count}")
    elif operator is Operator.IN:
        if not 1 <= count <= MAX_IN_VALUES:
            raise invalid("values", f"IN takes 1 to {MAX_IN_VALUES} values, got {count}")
    else:
        wanted = 2 if operator is Operator.BETWEEN else 1
        if count != wanted:
            what = "two values, low then high" if wanted == 2 else "one value"
            raise invalid("values", f"{operator.name} takes {what}, got {count}")
    if operator in RELATIVE_OPERATORS:
        if not 1 <= message.days <= MAX_DAYS:
            raise invalid("days", f"days must be 1 to {MAX_DAYS}, got {message.days}")
    elif message.days:
        raise invalid(
            "days", "days is only for WITHIN_LAST_DAYS, MORE_THAN_DAYS_AGO and WITHIN_NEXT_DAYS"
        )
    if values:
        kind = _kind(values[0])
        for index, value in enumerate(values[1:], start=1):
            if _kind(value) is not kind:
                raise invalid(
                    f"values[{index}]",
                    f"the values of a filter have one type: values[0] is a "
                    f"{_type_name(kind)}, this one a {_type_name(_kind(value))}",
                )
        if operator in _TEXT_ONLY and kind is not str:
            raise invalid("values[0]", f"{operator.name} takes a text value (string_value)")
        if operator in _ORDERED and kind not in (float, datetime):
            raise invalid(
                "values[0]",
                f"{operator.name} compares numbers or timestamps, not {_type_name(kind)}s",
            )
        if operator is Operator.BETWEEN and values[0] > values[1]:  # type: ignore[operator]
            raise invalid(
                "values", "BETWEEN's first value is above its second: give low, then high"
            )
        if operator is Operator.IN:
            values = tuple(dict.fromkeys(values))
    return EventFilter(name=name, operator=operator, values=values, days=message.days)


def _checked_value(value: profile_pb2.PropertyValue, path: str) -> EventValue:
    kind = value.WhichOneof("kind")
    if kind == "string_list_value":
        raise InvalidArgument(
            "INVALID_CONDITION",
            "a filter compares one value at a time, never a list: to find an item in a "
            "list property use CONTAINS with one string_value",
            field=path,
        )
    if kind == "number_value" and not math.isfinite(value.number_value):
        raise InvalidArgument("INVALID_CONDITION", "a number must be finite", field=path)
    if kind == "timestamp_value":
        return _instant(value.timestamp_value, path)
    result = event_value(value)
    if result is None:
        raise InvalidArgument(
            "INVALID_CONDITION",
            "set one of the value's kinds (string, number, bool or timestamp)",
            field=path,
        )
    return result


def _checked_inaction(
    message: campaign_pb2.Inaction,
    trigger_event: str,
    trigger_filters: tuple[EventFilter, ...],
    path: str,
) -> Inaction:
    event_name = _checked_event_name(message.event_name, f"{path}.event_name")
    filters = _checked_filters(message.event_filters, f"{path}.event_filters")
    window = message.window_seconds
    if not _seconds(MIN_WINDOW) <= window <= _seconds(MAX_WINDOW):
        raise InvalidArgument(
            "INVALID_WINDOW",
            f"window_seconds must be {_seconds(MIN_WINDOW)} to {_seconds(MAX_WINDOW)} "
            f"(30 days), got {window}",
            field=f"{path}.window_seconds",
        )
    # Every triggering event would also be the inaction event: each would end the wait
    # it follows, so no wait could ever run its window out undisturbed as meant.
    if event_name == trigger_event and {_filter_key(f) for f in filters} <= {
        _filter_key(f) for f in trigger_filters
    }:
        raise InvalidArgument(
            "INVALID_INACTION",
            f"every {event_name!r} event that triggers would also be the inaction event, so "
            "it would always cancel itself: name another event, or give the inaction "
            "event_filters that the triggering event does not meet",
            field=f"{path}.event_name",
        )
    return Inaction(
        event_name=event_name,
        filters=filters,
        window=timedelta(seconds=window),
        keep_first_wait=message.keep_first_wait,
    )


def _checked_reminder(message: campaign_pb2.DateReminder, path: str) -> DateReminder:
    name = message.property
    if not name:
        raise InvalidArgument(
            "MISSING_PROPERTY",
            "name the triggering event's timestamp property to remind at, e.g. 'travel_date'",
            field=f"{path}.property",
        )
    if not _PROPERTY_NAME.fullmatch(name):
        raise InvalidArgument(
            "INVALID_PROPERTY_NAME",
            f"an event property name is 1 to {MAX_PROPERTY_NAME_LENGTH} characters of "
            "letters, digits, space, '_', '.' and '-'",
            field=f"{path}.property",
        )
    offset = message.offset_seconds
    if abs(offset) > _seconds(MAX_OFFSET):
        raise InvalidArgument(
            "INVALID_OFFSET",
            f"offset_seconds must be -{_seconds(MAX_OFFSET)} to {_seconds(MAX_OFFSET)} "
            f"(366 days either way), got {offset}",
            field=f"{path}.offset_seconds",
        )
    return DateReminder(property=name, offset=timedelta(seconds=offset))


def _filter_key(test: EventFilter) -> tuple[object, ...]:
    """What a filter tests, regardless of the order of IN's values."""
    values: object = frozenset(test.values) if test.operator is Operator.IN else test.values
    return (test.name, test.operator, values, test.days)


# Conversions.


def _filter_to_proto(test: EventFilter) -> segment_pb2.PropertyCondition:
    return segment_pb2.PropertyCondition(
        name=test.name,
        operator=_OPERATOR_TO_PROTO[test.operator],  # type: ignore[arg-type]
        values=[_value_to_proto(v) for v in test.values],
        days=test.days,
    )


def _value_to_proto(value: EventValue) -> profile_pb2.PropertyValue:
    if isinstance(value, bool):
        return profile_pb2.PropertyValue(bool_value=value)
    if isinstance(value, int | float):
        return profile_pb2.PropertyValue(number_value=value)
    if isinstance(value, datetime):
        return profile_pb2.PropertyValue(timestamp_value=_timestamp(value))
    if isinstance(value, tuple):
        return profile_pb2.PropertyValue(
            string_list_value=profile_pb2.StringList(values=list(value))
        )
    return profile_pb2.PropertyValue(string_value=value)


def _filter_to_json(test: EventFilter) -> dict[str, Any]:
    return {
        "name": test.name,
        "op": test.operator.value,
        "values": [_value_to_json(v) for v in test.values],
        "days": test.days,
    }


def _filter_from_json(data: dict[str, Any]) -> EventFilter:
    return EventFilter(
        name=data["name"],
        operator=Operator(data["op"]),
        values=tuple(_value_from_json(v) for v in data.get("values", ())),
        days=data.get("days", 0),
    )


def _value_to_json(value: EventValue) -> Any:
    if isinstance(value, datetime):
        return {"t": _iso(value)}
    if isinstance(value, tuple):
        return {"l": list(value)}
    return value


def _value_from_json(stored: Any) -> EventValue:
    if isinstance(stored, dict):
        if "t" in stored:
            return _from_iso(stored["t"])
        return tuple(stored["l"])
    if isinstance(stored, int) and not isinstance(stored, bool):
        return float(stored)
    return stored  # type: ignore[no-any-return]


def _instant(timestamp: timestamp_pb2.Timestamp, path: str) -> datetime:
    try:
        return _from_timestamp(timestamp)
    except OverflowError:
        raise InvalidArgument(
            "INVALID_FIELD", f"{path}: must lie between the years 1 and 9999", field=path
        ) from None


def _from_timestamp(timestamp: timestamp_pb2.Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


def _timestamp(time: datetime) -> timestamp_pb2.Timestamp:
    since_epoch = time - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since_epoch.days * 86400 + since_epoch.seconds,
        nanos=since_epoch.microseconds * 1000,
    )


def _shifted(time: datetime, span: timedelta) -> datetime:
    """time + span, held at the first or last representable instant."""
    try:
        return time + span
    except OverflowError:
        return _LATEST if span > timedelta(0) else _EARLIEST


def _seconds(span: timedelta) -> int:
    return span // timedelta(seconds=1)


def _utc(time: datetime) -> datetime:
    """An aware time in UTC; a naive one is taken as UTC."""
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


def _iso(time: datetime) -> str:
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_iso(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _require_aware(time: datetime, name: str) -> None:
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
