"""Segment definitions: the condition tree as plain objects, its validation, and its
JSON form (how a saved segment is stored).

The semantics (clarion/segment/v1/segment.proto) in one place: a definition is evaluated
over pairs (person, subscriber or none). A person is a profile, or a subscriber without a
profile. Property, behaviour and test-profile conditions ask about the person, subscriber
conditions about the pair's subscriber. Every leaf is two-valued: a missing property
makes every comparison false except NOT_EXISTS. The SQL form is in segment_sql.py (the
store's side); tests hold a plain-Python evaluator of the same rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.kit.errors import InvalidArgument
from services.segment.models import MAX_EVENT_NAME_LENGTH, Browser, PropertyType

MAX_CONDITIONS = 200
MAX_DEPTH = 8
MAX_VALUES = 1000
MAX_EVENT_FILTERS = 20
MAX_DAYS = 36_500
MAX_HOURS = MAX_DAYS * 24
MAX_COUNT = 1_000_000_000


class PropertyOperator(StrEnum):
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


RELATIVE_TIME_OPERATORS = frozenset(
    {
        PropertyOperator.WITHIN_LAST_DAYS,
        PropertyOperator.MORE_THAN_DAYS_AGO,
        PropertyOperator.WITHIN_NEXT_DAYS,
    }
)
ORDERED_OPERATORS = frozenset(
    {PropertyOperator.GREATER_THAN, PropertyOperator.LESS_THAN, PropertyOperator.BETWEEN}
)


class Comparison(StrEnum):
    AT_LEAST = "at_least"
    AT_MOST = "at_most"
    EXACTLY = "exactly"
    BETWEEN = "between"
    MORE_THAN = "more_than"
    LESS_THAN = "less_than"


class AggregateFunction(StrEnum):
    SUM = "sum"
    AVERAGE = "average"
    MIN = "min"
    MAX = "max"


# Values: str, float, bool, datetime (aware, UTC) as the property's type says. Lists of
# strings are never compared whole, so a condition value is never a list.
Value = str | float | bool | datetime


@dataclass(frozen=True)
class PropertyTest:
    """A condition on one property of the person's profile (or of an event)."""

    name: str
    operator: PropertyOperator
    # The values' type; None exactly when there are no values. The stored property
    # must have it too, except that CONTAINS with a string also looks into a list of
    # strings. A stored type that differs (a name first stored after the definition was
    # saved) makes the leaf false, NOT_EQUALS included.
    type: PropertyType | None
    values: tuple[Value, ...] = ()
    days: int = 0


@dataclass(frozen=True)
class Window:
    """Which occurrences count: last_hours, or start <= t < end, or ever (all None).
    last_days is expressed as hours."""

    last_hours: int | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Count:
    comparison: Comparison
    value: float
    upper: float = 0


@dataclass(frozen=True)
class Aggregate:
    function: AggregateFunction
    property: str
    comparison: Comparison
    value: float
    upper: float = 0


@dataclass(frozen=True)
class Behaviour:
    """The person did (or did not) do event_name in the window, the events passing
    every filter; count and aggregate compare what was found."""

    event_name: str
    did_not: bool = False
    count: Count | None = None
    window: Window = field(default_factory=Window)
    filters: tuple[PropertyTest, ...] = ()
    aggregate: Aggregate | None = None


@dataclass(frozen=True)
class SubscriberTest:
    """Every field set must hold for the pair's subscriber."""

    browsers: tuple[Browser, ...] = ()
    timezones: tuple[str, ...] = ()
    subscribed_before: datetime | None = None
    subscribed_after: datetime | None = None
    reachable: bool = False


@dataclass(frozen=True)
class TestProfile:
    """The person is a profile marked test_profile."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class All:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Negate:
    condition: Condition


Condition = All | AnyOf | Negate | PropertyTest | Behaviour | SubscriberTest | TestProfile


def count_admits_zero(count: Count) -> bool:
    """Whether a person who never did the event satisfies the count (so it is compiled
    as "not among those who fail it", and the reference evaluator agrees)."""
    return compare(count.comparison, 0.0, count.value, count.upper)


def compare(comparison: Comparison, x: float, value: float, upper: float) -> bool:
    match comparison:
        case Comparison.AT_LEAST:
            return x >= value
        case Comparison.AT_MOST:
            return x <= value
        case Comparison.EXACTLY:
            return x == value
        case Comparison.BETWEEN:
            return value <= x <= upper
        case Comparison.MORE_THAN:
            return x > value
        case Comparison.LESS_THAN:
            return x < value


def effective_count(behaviour: Behaviour) -> Count:
    """did (no count): at least once; did_not: exactly zero times."""
    if behaviour.did_not:
        return Count(Comparison.EXACTLY, 0)
    return behaviour.count or Count(Comparison.AT_LEAST, 1)


def window_bounds(
    window: Window, now: datetime
) -> tuple[datetime | None, datetime | None, bool]:
    """(start, end, end_inclusive) of the window at evaluation time `now`; None is
    unbounded. The last N hours are now - N <= t <= now: an event stamped ahead of the
    clock (TrackEvents takes them up to a day ahead) has not happened yet. `between` is
    start <= t < end; ever is unbounded."""
    if window.last_hours is not None:
        return now - timedelta(hours=window.last_hours), now, True
    return window.start, window.end, False


def relative_bounds(test: PropertyTest, now: datetime) -> tuple[datetime | None, datetime | None, bool]:
    """(low, high, strict_high) for a relative time operator."""
    span = timedelta(days=test.days)
    if test.operator is PropertyOperator.WITHIN_LAST_DAYS:
        return now - span, now, False
    if test.operator is PropertyOperator.MORE_THAN_DAYS_AGO:
        return None, now - span, True
    return now, now + span, False


def possible_browsers(condition: Condition | None) -> frozenset[Browser]:
    """The browsers whose subscribers the definition does not rule out (None: everyone).

    Read from the tree's shape alone: `all` keeps what each of its conditions allows,
    `any` what one of them does, a subscriber condition on browsers those browsers.
    Every other condition (a property, a behaviour, a negation) allows every browser:
    a negation is not complemented, since not(browser = safari and ...) still lets
    Safari through, and telling when it does not is not worth the risk of ruling out a
    browser the audience has."""
    match condition:
        case All(conditions):
            allowed = frozenset(Browser)
            for child in conditions:
                allowed &= possible_browsers(child)
            return allowed
        case AnyOf(conditions):
            return frozenset().union(*(possible_browsers(child) for child in conditions))
        case SubscriberTest(browsers=browsers) if browsers:
            return frozenset(browsers)
    return frozenset(Browser)


# ---------------------------------------------------------------------------- checks

_PYTHON_TYPES: dict[PropertyType | None, type | tuple[type, ...]] = {
    PropertyType.STRING: str,
    PropertyType.NUMBER: (float, int),
    PropertyType.BOOLEAN: bool,
    PropertyType.TIMESTAMP: datetime,
}


class _Checker:
    def __init__(self) -> None:
        self.conditions = 0

    def refuse(self, reason: str, path: str, message: str) -> InvalidArgument:
        return InvalidArgument(reason, f"{path}: {message}", field=path)

    def check(self, condition: Condition, path: str, depth: int) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.refuse(
                "DEFINITION_TOO_LARGE", path, f"a definition has at most {MAX_CONDITIONS} conditions"
            )
        if depth > MAX_DEPTH:
            raise self.refuse(
                "DEFINITION_TOO_DEEP", path, f"conditions nest at most {MAX_DEPTH} levels deep"
            )
        match condition:
            case All(conditions) | AnyOf(conditions):
                kind = "all" if isinstance(condition, All) else "any"
                if not conditions:
                    raise self.refuse(
                        "EMPTY_GROUP", f"{path}.{kind}", "a group needs at least one condition"
                    )
                for index, child in enumerate(conditions):
                    self.check(child, f"{path}.{kind}.conditions[{index}]", depth + 1)
            case Negate(child):
                self.check(child, f"{path}.negate.condition", depth + 1)
            case PropertyTest():
                self.check_property(condition, f"{path}.property")
            case Behaviour():
                self.check_behaviour(condition, f"{path}.behaviour")
            case SubscriberTest():
                self.check_subscriber(condition, f"{path}.subscriber")
            case TestProfile():
                pass

    def check_property(self, test: PropertyTest, path: str) -> None:
        operator, values, type_ = test.operator, test.values, test.type
        wants = 0 if operator in (PropertyOperator.EXISTS, PropertyOperator.NOT_EXISTS) else 1
        if operator in RELATIVE_TIME_OPERATORS:
            wants = 0
            if not 1 <= test.days <= MAX_DAYS:
                raise self.refuse(
                    "INVALID_DAYS", f"{path}.days", f"days must be 1 to {MAX_DAYS}, got {test.days}"
                )
            if type_ not in (None, PropertyType.TIMESTAMP):
                raise self.refuse(
                    "PROPERTY_TYPE_MISMATCH",
                    f"{path}.operator",
                    f"{operator.name} compares timestamps; {test.name!r} holds {type_.value} values",
                )
        if operator is PropertyOperator.BETWEEN:
            wants = 2
        if operator is PropertyOperator.IN:
            if not 1 <= len(values) <= MAX_VALUES:
                raise self.refuse(
                    "INVALID_VALUES",
                    f"{path}.values",
                    f"IN needs 1 to {MAX_VALUES} values, got {len(values)}",
                )
        elif len(values) != wants:
            raise self.refuse(
                "INVALID_VALUES",
                f"{path}.values",
                f"{operator.name} takes {wants} value{'s' if wants != 1 else ''}, got {len(values)}",
            )
        if operator in ORDERED_OPERATORS and type_ not in (
            None,
            PropertyType.NUMBER,
            PropertyType.TIMESTAMP,
        ):
            raise self.refuse(
                "PROPERTY_TYPE_MISMATCH",
                f"{path}.operator",
                f"{operator.name} compares numbers or timestamps, not {type_.value} values",
            )
        if operator is PropertyOperator.STARTS_WITH and type_ is not PropertyType.STRING:
            raise self.refuse(
                "PROPERTY_TYPE_MISMATCH",
                f"{path}.operator",
                f"STARTS_WITH compares text, not {type_.value if type_ else 'unknown'} values",
            )
        if operator is PropertyOperator.CONTAINS and type_ not in (
            PropertyType.STRING,
            PropertyType.STRING_LIST,
        ):
            raise self.refuse(
                "PROPERTY_TYPE_MISMATCH",
                f"{path}.operator",
                "CONTAINS looks into text or a list of strings, "
                f"not {type_.value if type_ else 'unknown'} values",
            )
        if (type_ is None) != (not values) or type_ is PropertyType.STRING_LIST:
            raise self.refuse(
                "INVALID_VALUES",
                f"{path}.values",
                "values must all have the property's type, and a list is never a value "
                "(use CONTAINS with one string)",
            )
        for index, value in enumerate(values):
            if not isinstance(value, _PYTHON_TYPES[type_]) or (
                type_ is not PropertyType.BOOLEAN and isinstance(value, bool)
            ):
                raise self.refuse(
                    "PROPERTY_TYPE_MISMATCH",
                    f"{path}.values[{index}]",
                    f"every value must be a {type_.value}",
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise self.refuse(
                    "INVALID_NUMBER", f"{path}.values[{index}]", "a value must be a finite number"
                )
        if operator is PropertyOperator.BETWEEN and values[0] > values[1]:  # type: ignore[operator]
            raise self.refuse(
                "NEVER_MATCHES",
                f"{path}.values",
                "BETWEEN's first value is above its second: nothing can match",
            )

    def check_behaviour(self, behaviour: Behaviour, path: str) -> None:
        if not 1 <= len(behaviour.event_name) <= MAX_EVENT_NAME_LENGTH:
            raise self.refuse("MISSING_EVENT_NAME", f"{path}.event_name", "name the event")
        if behaviour.did_not and (behaviour.count or behaviour.aggregate):
            raise self.refuse(
                "INVALID_BEHAVIOUR",
                f"{path}.did_not",
                "did_not stands alone: say a count of 0 (count AT_MOST 0) or drop count/aggregate",
            )
        if len(behaviour.filters) > MAX_EVENT_FILTERS:
            raise self.refuse(
                "DEFINITION_TOO_LARGE",
                f"{path}.event_filters",
                f"at most {MAX_EVENT_FILTERS} event filters",
            )
        for index, test in enumerate(behaviour.filters):
            self.check_property(test, f"{path}.event_filters[{index}]")
        if behaviour.count is not None:
            self.check_comparison(behaviour.count.comparison, behaviour.count.value, behaviour.count.upper, f"{path}.count")
            if behaviour.count.comparison is Comparison.LESS_THAN and behaviour.count.value <= 0:
                raise self.refuse("NEVER_MATCHES", f"{path}.count", "no count is below 0")
        if behaviour.aggregate is not None:
            aggregate = behaviour.aggregate
            if not aggregate.property:
                raise self.refuse(
                    "MISSING_PROPERTY", f"{path}.aggregate.property", "name the numeric event property"
                )
            for name, number in (("value", aggregate.value), ("upper", aggregate.upper)):
                if not math.isfinite(number):
                    raise self.refuse(
                        "INVALID_NUMBER", f"{path}.aggregate.{name}", "must be a finite number"
                    )
            self.check_comparison(aggregate.comparison, aggregate.value, aggregate.upper, f"{path}.aggregate")
        window = behaviour.window
        if window.last_hours is not None and not 1 <= window.last_hours <= MAX_HOURS:
            raise self.refuse(
                "INVALID_WINDOW", f"{path}.window", f"the window is 1 to {MAX_HOURS} hours (or {MAX_DAYS} days)"
            )
        if (window.start is None) != (window.end is None):
            raise self.refuse("INVALID_WINDOW", f"{path}.window.between", "give both start and end")
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise self.refuse(
                "NEVER_MATCHES", f"{path}.window.between", "start must be before end: nothing can match"
            )

    def check_comparison(self, comparison: Comparison | None, value: float, upper: float, path: str) -> None:
        if comparison is None:
            raise self.refuse("UNKNOWN_OPERATOR", f"{path}.comparison", "choose a comparison")
        if comparison is Comparison.BETWEEN and value > upper:
            raise self.refuse(
                "NEVER_MATCHES", path, f"BETWEEN {value:g} and {upper:g}: the first is above the second"
            )

    def check_subscriber(self, test: SubscriberTest, path: str) -> None:
        if not (test.browsers or test.timezones or test.subscribed_before or test.subscribed_after or test.reachable):
            raise self.refuse(
                "EMPTY_CONDITION",
                path,
                "set at least one of browsers, timezones, subscribed_before, subscribed_after, reachable",
            )
        if (
            test.subscribed_before is not None
            and test.subscribed_after is not None
            and test.subscribed_after >= test.subscribed_before
        ):
            raise self.refuse(
                "NEVER_MATCHES",
                path,
                "subscribed_after is not before subscribed_before: nothing can match",
            )


def check_definition(condition: Condition, path: str = "definition.condition") -> None:
    """Refuses a malformed, too large or never-matching definition with INVALID_ARGUMENT
    naming the field (path is where the condition sits in the request)."""
    _Checker().check(condition, path, 1)


# -------------------------------------------------------------------------- JSON form


def _value_to_json(value: Value) -> Any:
    if isinstance(value, datetime):
        return {"t": value.astimezone(UTC).isoformat()}
    return value


def _value_from_json(stored: Any) -> Value:
    if isinstance(stored, dict):
        return datetime.fromisoformat(stored["t"])
    if isinstance(stored, int) and not isinstance(stored, bool):
        return float(stored)
    return stored  # type: ignore[no-any-return]


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _property_to_json(test: PropertyTest) -> dict[str, Any]:
    return {
        "name": test.name,
        "operator": test.operator.value,
        "type": test.type.value if test.type else None,
        "values": [_value_to_json(v) for v in test.values],
        "days": test.days,
    }


def _property_from_json(data: dict[str, Any]) -> PropertyTest:
    return PropertyTest(
        name=data["name"],
        operator=PropertyOperator(data["operator"]),
        type=PropertyType(data["type"]) if data["type"] else None,
        values=tuple(_value_from_json(v) for v in data["values"]),
        days=data["days"],
    )


def to_json(condition: Condition) -> dict[str, Any]:
    """The stored form of a definition (JSON-ready, versionless: fields only grow)."""
    match condition:
        case All(conditions):
            return {"all": [to_json(c) for c in conditions]}
        case AnyOf(conditions):
            return {"any": [to_json(c) for c in conditions]}
        case Negate(child):
            return {"negate": to_json(child)}
        case PropertyTest():
            return {"property": _property_to_json(condition)}
        case Behaviour():
            count, aggregate, window = condition.count, condition.aggregate, condition.window
            return {
                "behaviour": {
                    "event_name": condition.event_name,
                    "did_not": condition.did_not,
                    "count": None
                    if count is None
                    else [count.comparison.value, count.value, count.upper],
                    "window": [window.last_hours, _time(window.start), _time(window.end)],
                    "filters": [_property_to_json(t) for t in condition.filters],
                    "aggregate": None
                    if aggregate is None
                    else [
                        aggregate.function.value,
                        aggregate.property,
                        aggregate.comparison.value,
                        aggregate.value,
                        aggregate.upper,
                    ],
                }
            }
        case SubscriberTest():
            return {
                "subscriber": {
                    "browsers": [b.value for b in condition.browsers],
                    "timezones": list(condition.timezones),
                    "subscribed_before": _time(condition.subscribed_before),
                    "subscribed_after": _time(condition.subscribed_after),
                    "reachable": condition.reachable,
                }
            }
        case TestProfile():
            return {"test_profile": True}
    raise TypeError(f"not a condition: {condition!r}")


def from_json(data: dict[str, Any]) -> Condition:
    (kind, body), = data.items()
    if kind == "all":
        return All(tuple(from_json(c) for c in body))
    if kind == "any":
        return AnyOf(tuple(from_json(c) for c in body))
    if kind == "negate":
        return Negate(from_json(body))
    if kind == "property":
        return _property_from_json(body)
    if kind == "behaviour":
        count, aggregate = body["count"], body["aggregate"]
        last_hours, start, end = body["window"]
        return Behaviour(
            event_name=body["event_name"],
            did_not=body["did_not"],
            count=None if count is None else Count(Comparison(count[0]), count[1], count[2]),
            window=Window(last_hours, _parse_time(start), _parse_time(end)),
            filters=tuple(_property_from_json(t) for t in body["filters"]),
            aggregate=None
            if aggregate is None
            else Aggregate(
                AggregateFunction(aggregate[0]),
                aggregate[1],
                Comparison(aggregate[2]),
                aggregate[3],
                aggregate[4],
            ),
        )
    if kind == "subscriber":
        return SubscriberTest(
            browsers=tuple(Browser(b) for b in body["browsers"]),
            timezones=tuple(body["timezones"]),
            subscribed_before=_parse_time(body["subscribed_before"]),
            subscribed_after=_parse_time(body["subscribed_after"]),
            reachable=body["reachable"],
        )
    if kind == "test_profile":
        return TestProfile()
    raise ValueError(f"unknown condition kind {kind!r}")
