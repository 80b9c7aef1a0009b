"""Every request checked against the limits its proto declares, before a handler runs.

Limits live next to the fields they bound, as `(clarion.common.v1.constraints)` options
(protos/clarion/common/v1/constraints.proto, which also lists the checks every field gets
without declaring anything). The auth interceptor calls `check_request` on every call, so
no handler repeats a length or range check, and malformed input ends as
INVALID_ARGUMENT naming the field instead of reaching a database that would refuse it
(PostgreSQL refuses NUL in text, timestamps past 9999, a varchar over its length).

Plans are compiled once per message type; a check walks only the fields that are set
(and the few whose unset value breaks a limit). A check answers None or what is wrong,
and the field's path is spelled only then: a bulk request of thousands of nested items
(ImportSubscribers) would otherwise build a path string per field per item, which cost
more than the rest of its checks.
"""

from __future__ import annotations

import math
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from clarion.common.v1 import constraints_pb2
from services.kit.errors import InvalidArgument

DEFAULT_MAX_TEXT = 4096
DEFAULT_MAX_BYTES = 65_536
DEFAULT_MAX_ITEMS = 10_000
# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999
# Durations: ±10,000 years, as the well-known type documents.
MAX_DURATION_SECONDS = 315_576_000_000

# NUL and the other C0 controls and DEL; tab, newline and carriage return are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKING = re.compile(r"[\t\n\r]")
_ID = re.compile(r"[A-Za-z0-9_.:-]+")
# Ids (or empty values) one per line: a column of them joined with newlines.
_ID_LINES = re.compile(r"[A-Za-z0-9_.:\n-]*")

_TEXT = FieldDescriptor.TYPE_STRING
_BYTES = FieldDescriptor.TYPE_BYTES
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_ENUM = FieldDescriptor.TYPE_ENUM
_INTEGERS = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip
_FLOATS = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}


class InvalidField(InvalidArgument):
    """A field broke a declared or default limit; the message names the field, never
    echoes the value (which may be huge or hostile)."""

    def __init__(self, path: str, problem: str, reason: str = "") -> None:
        super().__init__(reason or "INVALID_FIELD", f"{path}: {problem}", field=path)


# What is wrong with a value: (the path below it, "" for a scalar and ".name..." inside
# a message; the problem; the reason), the path being spelled only for a failure.
_Problem = tuple[str, str, str]
# A check of one value: None when it is within its limits.
_ValueCheck = Callable[[Any], _Problem | None]
# A check of a whole list of messages a field at a time: True when every item is within
# its limits; False when one may not be (the items are then checked one by one, which
# finds the first problem and its path).
_ItemsCheck = Callable[[list[Any]], bool]


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    repeated: bool
    max_items: int
    too_many_reason: str
    # Checks one value (an item, for a list); None: nothing to check.
    check: _ValueCheck | None
    # Map fields: checks of key and value.
    map_checks: tuple[_ValueCheck | None, _ValueCheck | None] | None = None
    # Singular messages are checked only when present.
    presence: bool = False
    # Lists of flat messages (scalars and timestamps): checked a field at a time first.
    items_check: _ItemsCheck | None = None


@dataclass(frozen=True)
class _MessagePlan:
    by_name: dict[str, _FieldPlan]
    # Scalar fields whose default value (what an unset field reads as) breaks a limit,
    # e.g. an integer with a minimum above 0: checked even when not set.
    on_default: tuple[_FieldPlan, ...]


_plans: dict[str, _MessagePlan] = {}
_plans_lock = threading.Lock()


def check_request(message: Message) -> None:
    """Raises InvalidField for the first field of `message` (recursively) that breaks a
    limit; returns None when every field is within its limits."""
    problem = _check_message(message)
    if problem is not None:
        path, text, reason = problem
        raise InvalidField(path.removeprefix("."), text, reason)


def _check_message(message: Message) -> _Problem | None:
    """The first problem of `message`, its path starting with "." (".name[3].inner")."""
    message_plan = _plan(message.DESCRIPTOR)
    plans = message_plan.by_name
    # ListFields gives the set fields only (from C): an unset field reads as its default,
    # which is within every limit but those of `on_default`.
    for field, value in message.ListFields():
        plan = plans[field.name]
        check = plan.check
        if plan.map_checks is not None:
            path = f".{plan.name}"
            if len(value) > plan.max_items:
                return path, f"at most {plan.max_items} entries", plan.too_many_reason
            key_check, value_check = plan.map_checks
            for key in value:
                if key_check is not None and (problem := key_check(key)) is not None:
                    return f"{path}[key]{problem[0]}", problem[1], problem[2]
                if value_check is not None and (problem := value_check(value[key])) is not None:
                    return f"{path}[{_shown_key(key)}]{problem[0]}", problem[1], problem[2]
        elif plan.repeated:
            if len(value) > plan.max_items:
                return (
                    f".{plan.name}",
                    f"at most {plan.max_items} items (got {len(value)})",
                    plan.too_many_reason,
                )
            if check is not None:
                items_check = plan.items_check
                if items_check is not None and len(value) > 1 and items_check(list(value)):
                    continue
                for index, item in enumerate(value):
                    if (problem := check(item)) is not None:
                        return f".{plan.name}[{index}]{problem[0]}", problem[1], problem[2]
        elif check is not None and (problem := check(value)) is not None:
            return f".{plan.name}{problem[0]}", problem[1], problem[2]
    for plan in message_plan.on_default:
        assert plan.check is not None
        if (problem := plan.check(getattr(message, plan.name))) is not None:
            return f".{plan.name}{problem[0]}", problem[1], problem[2]
    return None


def _shown_key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 32 and _ID.fullmatch(text) else "…"


def _plan(descriptor: Descriptor) -> _MessagePlan:
    plan = _plans.get(descriptor.full_name)
    if plan is None:
        with _plans_lock:
            plan = _plans.get(descriptor.full_name)
            if plan is None:
                fields = [(field, _field_plan(field)) for field in descriptor.fields]
                plan = _MessagePlan(
                    by_name={field.name: field_plan for field, field_plan in fields},
                    on_default=tuple(
                        field_plan
                        for field, field_plan in fields
                        if _default_breaks(field, field_plan)
                    ),
                )
                _plans[descriptor.full_name] = plan
    return plan


def _default_breaks(field: FieldDescriptor, plan: _FieldPlan) -> bool:
    if plan.repeated or plan.presence or plan.check is None or field.type == _MESSAGE:
        return False
    return plan.check(field.default_value) is not None


def _constraints(field: FieldDescriptor) -> constraints_pb2.FieldConstraints:
    options = field.GetOptions()
    if options.HasExtension(constraints_pb2.constraints):
        return options.Extensions[constraints_pb2.constraints]
    return constraints_pb2.FieldConstraints()


def _field_plan(field: FieldDescriptor) -> _FieldPlan:
    rules = _constraints(field)
    max_items = rules.max_items or DEFAULT_MAX_ITEMS
    if field.type == _MESSAGE and field.message_type.GetOptions().map_entry:
        entry = field.message_type
        return _FieldPlan(
            field.name,
            repeated=True,
            max_items=max_items,
            too_many_reason=rules.too_many_reason,
            check=None,
            map_checks=(
                _value_check(entry.fields_by_name["key"], constraints_pb2.FieldConstraints()),
                _value_check(entry.fields_by_name["value"], rules),
            ),
        )
    return _FieldPlan(
        field.name,
        repeated=field.is_repeated,
        max_items=max_items,
        too_many_reason=rules.too_many_reason,
        check=_value_check(field, rules),
        presence=field.type == _MESSAGE and not field.is_repeated,
        items_check=_items_check(field.message_type)
        if field.is_repeated and field.type == _MESSAGE
        else None,
    )


def _items_check(descriptor: Descriptor, outer: frozenset[str] = frozenset()) -> _ItemsCheck | None:
    """A check of a list of `descriptor` messages a field at a time (each field's values
    gathered by one map in C, then checked as a column: a length's maximum, one regular
    expression over the values joined with newlines, a set of enum values); None when
    the message has a map or contains itself.

    A singular message field is a column of messages, checked the same way field by field
    (ImportSubscribers: a subscriber's push subscription inside each row); a list field
    is its lists' lengths and then all their elements as one column (TrackEvents: each
    event's properties). A column check may refuse what the item-by-item check accepts
    (an unset message reads as its default, which it checks too) but never accepts what
    that check refuses: a refused column only sends the items one by one."""
    outer = outer | {descriptor.full_name}
    columns: list[_ItemsCheck] = []
    for field in descriptor.fields:
        rules = _constraints(field)
        nested: _ItemsCheck | None = None
        if field.type == _MESSAGE and field.message_type.full_name not in _WELL_KNOWN:
            inner = field.message_type
            if inner.GetOptions().map_entry or inner.full_name in outer:
                return None
            # An unset singular one would refuse its column every time: item by item.
            if not field.is_repeated and _a_default_breaks(inner):
                return None
            nested = _items_check(inner, outer)
            if nested is None:
                return None
        if field.is_repeated:
            elements = nested if nested is not None else _values_check(field, rules)
            columns.append(
                _list_column(attrgetter(field.name), rules.max_items or DEFAULT_MAX_ITEMS, elements)
            )
        elif nested is not None:
            columns.append(_nested_column(attrgetter(field.name), nested))
        elif (column := _column_check(field, rules)) is not None:
            columns.append(column)

    def check(items: list[Any]) -> bool:
        return all(column(items) for column in columns)

    return check


_WELL_KNOWN = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
# A check of a list of values (a column): True when every value is within its limits.
_ValuesCheck = Callable[[list[Any]], bool]


def _nested_column(messages_of: Callable[[Any], Any], check: _ItemsCheck) -> _ItemsCheck:
    return lambda items: check(list(map(messages_of, items)))


def _list_column(
    lists_of: Callable[[Any], Any], max_items: int, elements: _ValuesCheck | None
) -> _ItemsCheck:
    def check(items: list[Any]) -> bool:
        lists = list(map(lists_of, items))
        if max(map(len, lists)) > max_items:
            return False
        if elements is None:
            return True
        flat = [element for values in lists for element in values]
        return not flat or elements(flat)

    return check


def _a_default_breaks(descriptor: Descriptor) -> bool:
    """Whether an unset scalar field of `descriptor` breaks its limits (as on_default)."""
    for field in descriptor.fields:
        if field.is_repeated or field.type == _MESSAGE:
            continue
        check = _value_check(field, _constraints(field))
        if check is not None and check(field.default_value) is not None:
            return True
    return False


def _column_check(
    field: FieldDescriptor, rules: constraints_pb2.FieldConstraints
) -> _ItemsCheck | None:
    """A check of one singular scalar (or timestamp) field over a list of messages."""
    if field.type == _MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp":
        # Read through the parent: no Timestamp object is made per item.
        seconds_of = attrgetter(f"{field.name}.seconds")
        nanos_of = attrgetter(f"{field.name}.nanos")
        return lambda items: _times_within(
            list(map(seconds_of, items)), list(map(nanos_of, items))
        )
    values = _values_check(field, rules)
    if values is None:
        return None
    values_of = attrgetter(field.name)
    return lambda items: values(list(map(values_of, items)))


def _times_within(seconds: list[int], nanos: list[int]) -> bool:
    return (
        MIN_TIMESTAMP_SECONDS <= min(seconds)
        and max(seconds) <= MAX_TIMESTAMP_SECONDS
        and 0 <= min(nanos)
        and max(nanos) <= MAX_NANOS
    )


def _values_check(
    field: FieldDescriptor, rules: constraints_pb2.FieldConstraints
) -> _ValuesCheck | None:
    """A check of a non-empty list of one field's values at once; None: nothing to check."""
    one = _value_check(field, rules)
    if one is None:
        return None

    def each(values: list[Any]) -> bool:
        return all(one(value) is None for value in values)

    if field.type == _TEXT:
        if rules.min_length or rules.format == constraints_pb2.TEXT_FORMAT_URL:
            return each
        max_length = rules.max_length or DEFAULT_MAX_TEXT
        ids = rules.format == constraints_pb2.TEXT_FORMAT_ID
        one_line = rules.format == constraints_pb2.TEXT_FORMAT_LINE

        def text_column(values: list[str]) -> bool:
            if max(map(len, values)) > max_length:
                return False
            joined = "\n".join(values)
            # A value holding a newline itself would pass for two lines: checked apart.
            if joined.count("\n") != len(values) - 1 or _CONTROL.search(joined):
                return False
            if ids and not _ID_LINES.fullmatch(joined):
                return False
            return not (one_line and ("\t" in joined or "\r" in joined))

        return text_column
    if field.type == _BYTES:
        max_bytes = rules.max_length or DEFAULT_MAX_BYTES
        min_bytes = rules.min_length

        def bytes_column(values: list[bytes]) -> bool:
            lengths = list(map(len, values))
            if max(lengths) > max_bytes:
                return False
            return not min_bytes or min(n or min_bytes for n in lengths) >= min_bytes

        return bytes_column
    if field.type == _ENUM:
        defined = frozenset(field.enum_type.values_by_number)
        return defined.issuperset
    if field.type in _INTEGERS:
        low = rules.min if rules.HasField("min") else None
        high = rules.max if rules.HasField("max") else None
        return lambda values: (low is None or min(values) >= low) and (
            high is None or max(values) <= high
        )
    if field.type in _FLOATS:
        return lambda values: all(map(math.isfinite, values))
    if field.type == _MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp":
        return lambda values: _times_within(
            [value.seconds for value in values], [value.nanos for value in values]
        )
    return each


def _value_check(
    field: FieldDescriptor, rules: constraints_pb2.FieldConstraints
) -> _ValueCheck | None:
    if field.type == _TEXT:
        return _text_check(rules)
    if field.type == _BYTES:
        return _bytes_check(rules)
    if field.type == _ENUM:
        return _enum_check(field, rules.reason)
    if field.type in _INTEGERS:
        return _integer_check(rules)
    if field.type in _FLOATS:
        return _float_check(rules.reason)
    if field.type == _MESSAGE:
        return _message_check(field.message_type)
    return None


def _text_check(rules: constraints_pb2.FieldConstraints) -> _ValueCheck:
    max_length = rules.max_length or DEFAULT_MAX_TEXT
    min_length = rules.min_length
    text_format = rules.format
    reason = rules.reason
    control = _CONTROL.search
    one_line = text_format == constraints_pb2.TEXT_FORMAT_LINE
    line_breaking = _LINE_BREAKING.search

    def check(value: str) -> _Problem | None:
        if not value:
            return None
        if len(value) > max_length:
            return "", f"at most {max_length} characters (got {len(value)})", reason
        if len(value) < min_length:
            return "", f"at least {min_length} characters (got {len(value)})", reason
        if control(value):
            return "", "must not contain NUL or other control characters", reason
        if text_format == constraints_pb2.TEXT_FORMAT_ID and not _ID.fullmatch(value):
            return "", "must be an id: letters, digits and - _ . : only", reason
        if one_line and line_breaking(value):
            return "", "must be one line (no tab, newline or carriage return)", reason
        if text_format == constraints_pb2.TEXT_FORMAT_URL and not _is_web_url(value):
            return "", "must be an absolute http or https URL with a host", reason
        return None

    return check


def _is_web_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def _bytes_check(rules: constraints_pb2.FieldConstraints) -> _ValueCheck:
    max_length = rules.max_length or DEFAULT_MAX_BYTES
    min_length = rules.min_length
    reason = rules.reason

    def check(value: bytes) -> _Problem | None:
        if len(value) > max_length:
            return "", f"at most {max_length} bytes (got {len(value)})", reason
        if value and len(value) < min_length:
            return "", f"at least {min_length} bytes (got {len(value)})", reason
        return None

    return check


def _enum_check(field: FieldDescriptor, reason: str) -> _ValueCheck:
    defined = frozenset(field.enum_type.values_by_number)
    enum_name = field.enum_type.name

    def check(value: int) -> _Problem | None:
        if value not in defined:
            return "", f"got {value}, which is not a {enum_name} value", reason
        return None

    return check


def _integer_check(rules: constraints_pb2.FieldConstraints) -> _ValueCheck | None:
    low = rules.min if rules.HasField("min") else None
    high = rules.max if rules.HasField("max") else None
    reason = rules.reason
    if low is None and high is None:
        return None

    def check(value: int) -> _Problem | None:
        if low is not None and value < low:
            return "", f"must be at least {low} (got {value})", reason
        if high is not None and value > high:
            return "", f"must be at most {high} (got {value})", reason
        return None

    return check


def _float_check(reason: str) -> _ValueCheck:
    def check(value: float) -> _Problem | None:
        if value != value or value in (float("inf"), float("-inf")):
            return "", "must be a finite number", reason
        return None

    return check


def _message_check(descriptor: Descriptor) -> _ValueCheck:
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _check_timestamp
    if descriptor.full_name == "google.protobuf.Duration":
        return _check_duration

    return _check_message


def _check_timestamp(value: Any) -> _Problem | None:
    if not MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS:
        return "", "must lie between the years 1 and 9999", ""
    if not 0 <= value.nanos <= MAX_NANOS:
        return "", "nanos must be in 0..999999999", ""
    return None


def _check_duration(value: Any) -> _Problem | None:
    if not -MAX_DURATION_SECONDS <= value.seconds <= MAX_DURATION_SECONDS:
        return "", "must be within ±10,000 years", ""
    if not -MAX_NANOS <= value.nanos <= MAX_NANOS or (
        value.nanos and value.seconds and (value.nanos > 0) != (value.seconds > 0)
    ):
        return "", "nanos must be in -999999999..999999999, with the sign of seconds", ""
    return None
