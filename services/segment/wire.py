"""Segment definitions and saved segments between their protos (segment.proto) and the
domain's objects (services.segment.definition, services.segment.segments).

Reading a definition refuses what the proto can say but the domain cannot hold (an
unset oneof, an UNSPECIFIED enum, `test_profile: false`, `ever: false`, a list as a
value), naming the field by its path in the request ("segment.definition.condition
.all.conditions[2].property.values[0]"); definition_from_proto then runs the domain's
check_definition. Writing is the inverse: what a caller sent comes back equal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2
from services.kit.errors import InvalidArgument
from services.segment.definition import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    RELATIVE_TIME_OPERATORS,
    Aggregate,
    AggregateFunction,
    All,
    AnyOf,
    Behaviour,
    Comparison,
    Condition,
    Count,
    Negate,
    PropertyOperator,
    PropertyTest,
    SubscriberTest,
    TestProfile,
    Value,
    Window,
    check_definition,
)
from services.segment.domain import validate_timezone
from services.segment.models import MAX_PROPERTY_NAME_LENGTH, Browser, PropertyType
from services.segment.segments import Segment

BROWSER_FROM_PROTO: dict[common_pb2.Browser, Browser] = {
    common_pb2.BROWSER_CHROME: Browser.CHROME,
    common_pb2.BROWSER_FIREFOX: Browser.FIREFOX,
    common_pb2.BROWSER_EDGE: Browser.EDGE,
    common_pb2.BROWSER_OPERA: Browser.OPERA,
    common_pb2.BROWSER_SAFARI: Browser.SAFARI,
    common_pb2.BROWSER_OTHER: Browser.OTHER,
    common_pb2.BROWSER_SAFARI_LEGACY: Browser.SAFARI_LEGACY,
}
BROWSER_TO_PROTO = {browser: value for value, browser in BROWSER_FROM_PROTO.items()}

_OPERATOR_FROM_PROTO: dict[int, PropertyOperator] = {
    segment_pb2.PropertyOperator.Value(f"PROPERTY_OPERATOR_{operator.name}"): operator
    for operator in PropertyOperator
}
_OPERATOR_TO_PROTO = {operator: value for value, operator in _OPERATOR_FROM_PROTO.items()}
_COMPARISON_FROM_PROTO: dict[int, Comparison] = {
    segment_pb2.Comparison.Value(f"COMPARISON_{comparison.name}"): comparison
    for comparison in Comparison
}
_COMPARISON_TO_PROTO = {comparison: value for value, comparison in _COMPARISON_FROM_PROTO.items()}
_FUNCTION_FROM_PROTO: dict[int, AggregateFunction] = {
    segment_pb2.AggregateFunction.Value(f"AGGREGATE_FUNCTION_{function.name}"): function
    for function in AggregateFunction
}
_FUNCTION_TO_PROTO = {function: value for value, function in _FUNCTION_FROM_PROTO.items()}

# The names a site can store (as services.segment.domain checks them).
_PROPERTY_NAME = re.compile(rf"[A-Za-z0-9_ .\-]{{1,{MAX_PROPERTY_NAME_LENGTH}}}")


def _refuse(reason: str, path: str, message: str) -> InvalidArgument:
    return InvalidArgument(reason, f"{path}: {message}", field=path)


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# ------------------------------------------------------------------ proto -> domain


def _property_name(name: str, path: str) -> str:
    if not name:
        raise _refuse("MISSING_PROPERTY_NAME", path, "name the property")
    if not _PROPERTY_NAME.fullmatch(name):
        raise _refuse(
            "INVALID_PROPERTY_NAME",
            path,
            f"a property name is 1 to {MAX_PROPERTY_NAME_LENGTH} characters of letters, "
            "digits, space, '_', '.' and '-'",
        )
    return name


def _value_from_proto(value: profile_pb2.PropertyValue, path: str) -> tuple[PropertyType, Value]:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return PropertyType.STRING, value.string_value
    if kind == "number_value":
        return PropertyType.NUMBER, float(value.number_value)
    if kind == "bool_value":
        return PropertyType.BOOLEAN, bool(value.bool_value)
    if kind == "timestamp_value":
        return PropertyType.TIMESTAMP, _time(value.timestamp_value)
    if kind == "string_list_value":
        raise _refuse(
            "INVALID_VALUES",
            path,
            "a condition compares one value at a time, never a list: to find an item in a "
            "list property use CONTAINS with one string_value (or any of several with IN "
            "inside an `any` group of CONTAINS conditions)",
        )
    raise _refuse("MISSING_VALUE", path, "set one of the value's kinds")


def _property_from_proto(message: segment_pb2.PropertyCondition, path: str) -> PropertyTest:
    name = _property_name(message.name, f"{path}.name")
    operator = _OPERATOR_FROM_PROTO.get(message.operator)
    if operator is None:
        raise _refuse(
            "UNKNOWN_OPERATOR",
            f"{path}.operator",
            f"choose an operator ({', '.join(o.name for o in PropertyOperator)})",
        )
    if message.days and operator not in RELATIVE_TIME_OPERATORS:
        raise _refuse(
            "INVALID_DAYS",
            f"{path}.days",
            "days is only for WITHIN_LAST_DAYS, MORE_THAN_DAYS_AGO and WITHIN_NEXT_DAYS",
        )
    type_: PropertyType | None = None
    values: list[Value] = []
    for index, given in enumerate(message.values):
        value_path = f"{path}.values[{index}]"
        value_type, value = _value_from_proto(given, value_path)
        if type_ is None:
            type_ = value_type
        elif value_type is not type_:
            raise _refuse(
                "PROPERTY_TYPE_MISMATCH",
                value_path,
                f"the values of a condition have one type: values[0] is a {type_.value}, "
                f"this one a {value_type.value}",
            )
        values.append(value)
    return PropertyTest(
        name=name, operator=operator, type=type_, values=tuple(values), days=message.days
    )


def _comparison(value: int, path: str) -> Comparison:
    comparison = _COMPARISON_FROM_PROTO.get(value)
    if comparison is None:
        raise _refuse(
            "UNKNOWN_OPERATOR",
            path,
            f"choose a comparison ({', '.join(c.name for c in Comparison)})",
        )
    return comparison


def _window_from_proto(message: segment_pb2.TimeWindow, path: str) -> Window:
    kind = message.WhichOneof("kind")
    if kind == "last_hours":
        return Window(last_hours=message.last_hours)
    if kind == "last_days":
        return Window(last_hours=message.last_days * 24)
    if kind == "between":
        between = message.between
        for end in ("start", "end"):
            if not between.HasField(end):
                raise _refuse(
                    "INVALID_WINDOW", f"{path}.between.{end}", "give both start and end"
                )
        return Window(start=_time(between.start), end=_time(between.end))
    if kind == "ever" and not message.ever:
        raise _refuse(
            "INVALID_WINDOW",
            f"{path}.ever",
            "ever: false is not a window; leave the window unset (or ever: true) for any time",
        )
    return Window()


def _behaviour_from_proto(message: segment_pb2.BehaviourCondition, path: str) -> Behaviour:
    count = None
    if message.HasField("count"):
        count = Count(
            comparison=_comparison(message.count.comparison, f"{path}.count.comparison"),
            value=float(message.count.value),
            upper=float(message.count.upper),
        )
    aggregate = None
    if message.HasField("aggregate"):
        given = message.aggregate
        function = _FUNCTION_FROM_PROTO.get(given.function)
        if function is None:
            raise _refuse(
                "UNKNOWN_OPERATOR",
                f"{path}.aggregate.function",
                f"choose a function ({', '.join(f.name for f in AggregateFunction)})",
            )
        aggregate = Aggregate(
            function=function,
            property=_property_name(given.property, f"{path}.aggregate.property"),
            comparison=_comparison(given.comparison, f"{path}.aggregate.comparison"),
            value=given.value,
            upper=given.upper,
        )
    window = (
        _window_from_proto(message.window, f"{path}.window")
        if message.HasField("window")
        else Window()
    )
    return Behaviour(
        event_name=message.event_name,
        did_not=message.did_not,
        count=count,
        window=window,
        filters=tuple(
            _property_from_proto(test, f"{path}.event_filters[{index}]")
            for index, test in enumerate(message.event_filters)
        ),
        aggregate=aggregate,
    )


def _subscriber_from_proto(message: segment_pb2.SubscriberCondition, path: str) -> SubscriberTest:
    browsers = []
    for index, value in enumerate(message.browsers):
        browser = BROWSER_FROM_PROTO.get(value)
        if browser is None:
            raise _refuse(
                "INVALID_BROWSER",
                f"{path}.browsers[{index}]",
                f"choose one of {', '.join(common_pb2.Browser.keys()[1:])}",
            )
        browsers.append(browser)
    for index, timezone in enumerate(message.timezones):
        try:
            valid = bool(timezone) and validate_timezone(timezone) == timezone
        except InvalidArgument:
            valid = False
        if not valid:
            raise _refuse(
                "INVALID_TIMEZONE",
                f"{path}.timezones[{index}]",
                "an IANA time zone name such as 'Europe/Berlin'",
            )
    return SubscriberTest(
        browsers=tuple(browsers),
        timezones=tuple(message.timezones),
        subscribed_before=(
            _time(message.subscribed_before) if message.HasField("subscribed_before") else None
        ),
        subscribed_after=(
            _time(message.subscribed_after) if message.HasField("subscribed_after") else None
        ),
        reachable=message.reachable,
    )


class _Reader:
    """Reads one condition tree, stopping as soon as it is too large or too deep (as
    check_definition would refuse it) so a huge request costs no more than that."""

    def __init__(self) -> None:
        self.conditions = 0

    def read(self, message: segment_pb2.Condition, path: str, depth: int) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _refuse(
                "DEFINITION_TOO_LARGE", path, f"a definition has at most {MAX_CONDITIONS} conditions"
            )
        if depth > MAX_DEPTH:
            raise _refuse(
                "DEFINITION_TOO_DEEP", path, f"conditions nest at most {MAX_DEPTH} levels deep"
            )
        kind = message.WhichOneof("kind")
        if kind in ("all", "any"):
            group = message.all if kind == "all" else message.any
            children = tuple(
                self.read(child, f"{path}.{kind}.conditions[{index}]", depth + 1)
                for index, child in enumerate(group.conditions)
            )
            return All(children) if kind == "all" else AnyOf(children)
        if kind == "negate":
            return Negate(self.read(message.negate.condition, f"{path}.negate.condition", depth + 1))
        if kind == "property":
            return _property_from_proto(message.property, f"{path}.property")
        if kind == "behaviour":
            return _behaviour_from_proto(message.behaviour, f"{path}.behaviour")
        if kind == "subscriber":
            return _subscriber_from_proto(message.subscriber, f"{path}.subscriber")
        if kind == "test_profile":
            if not message.test_profile:
                raise _refuse(
                    "INVALID_CONDITION",
                    f"{path}.test_profile",
                    "test_profile: false is refused; say `negate` of test_profile: true",
                )
            return TestProfile()
        raise _refuse(
            "MISSING_CONDITION",
            path,
            "set one of all, any, negate, property, behaviour, subscriber, test_profile",
        )


def condition_from_proto(message: segment_pb2.Condition, path: str) -> Condition:
    """The condition tree of `message`, which sits at `path` in the request. Refuses
    (INVALID_ARGUMENT naming the field) what the domain cannot hold; the domain's own
    rules are check_definition's."""
    return _Reader().read(message, path, 1)


def definition_from_proto(message: segment_pb2.SegmentDefinition, path: str) -> Condition:
    """The checked condition of a definition at `path` ("segment.definition")."""
    if not message.HasField("condition"):
        raise _refuse(
            "MISSING_DEFINITION", f"{path}.condition", "the conditions a person must meet"
        )
    condition = condition_from_proto(message.condition, f"{path}.condition")
    check_definition(condition, f"{path}.condition")
    return condition


def audience_from_proto(
    message: segment_pb2.AudienceSelector, path: str
) -> str | Condition | None:
    """A saved segment's id, an ad-hoc definition (checked), or None: every subscriber."""
    kind = message.WhichOneof("kind")
    if kind == "segment_id":
        if not message.segment_id:
            raise _refuse("MISSING_SEGMENT_ID", f"{path}.segment_id", "name the segment")
        return message.segment_id
    if kind == "definition":
        return definition_from_proto(message.definition, f"{path}.definition")
    return None


# ------------------------------------------------------------------ domain -> proto


def _value_to_proto(value: Value) -> profile_pb2.PropertyValue:
    if isinstance(value, bool):
        return profile_pb2.PropertyValue(bool_value=value)
    if isinstance(value, float | int):
        return profile_pb2.PropertyValue(number_value=value)
    if isinstance(value, datetime):
        return profile_pb2.PropertyValue(timestamp_value=_stamp(value))
    return profile_pb2.PropertyValue(string_value=value)


def _property_to_proto(test: PropertyTest) -> segment_pb2.PropertyCondition:
    return segment_pb2.PropertyCondition(
        name=test.name,
        operator=_OPERATOR_TO_PROTO[test.operator],  # type: ignore[arg-type]
        values=[_value_to_proto(v) for v in test.values],
        days=test.days,
    )


def _window_to_proto(window: Window) -> segment_pb2.TimeWindow | None:
    if window.last_hours is not None:
        if window.last_hours % 24 == 0:
            return segment_pb2.TimeWindow(last_days=window.last_hours // 24)
        return segment_pb2.TimeWindow(last_hours=window.last_hours)
    if window.start is not None and window.end is not None:
        return segment_pb2.TimeWindow(
            between=segment_pb2.TimeRange(start=_stamp(window.start), end=_stamp(window.end))
        )
    return None  # ever: the window is left unset


def _behaviour_to_proto(behaviour: Behaviour) -> segment_pb2.BehaviourCondition:
    message = segment_pb2.BehaviourCondition(
        event_name=behaviour.event_name,
        did_not=behaviour.did_not,
        event_filters=[_property_to_proto(t) for t in behaviour.filters],
    )
    if behaviour.count is not None:
        count = behaviour.count
        message.count.CopyFrom(
            segment_pb2.CountComparison(
                comparison=_COMPARISON_TO_PROTO[count.comparison],  # type: ignore[arg-type]
                value=int(count.value),
                upper=int(count.upper),
            )
        )
    window = _window_to_proto(behaviour.window)
    if window is not None:
        message.window.CopyFrom(window)
    if behaviour.aggregate is not None:
        aggregate = behaviour.aggregate
        message.aggregate.CopyFrom(
            segment_pb2.AggregateCondition(
                function=_FUNCTION_TO_PROTO[aggregate.function],  # type: ignore[arg-type]
                property=aggregate.property,
                comparison=_COMPARISON_TO_PROTO[aggregate.comparison],  # type: ignore[arg-type]
                value=aggregate.value,
                upper=aggregate.upper,
            )
        )
    return message


def _subscriber_to_proto(test: SubscriberTest) -> segment_pb2.SubscriberCondition:
    message = segment_pb2.SubscriberCondition(
        browsers=[BROWSER_TO_PROTO[b] for b in test.browsers],
        timezones=list(test.timezones),
        reachable=test.reachable,
    )
    if test.subscribed_before is not None:
        message.subscribed_before.CopyFrom(_stamp(test.subscribed_before))
    if test.subscribed_after is not None:
        message.subscribed_after.CopyFrom(_stamp(test.subscribed_after))
    return message


def condition_to_proto(condition: Condition) -> segment_pb2.Condition:
    """The proto of a condition tree (a window of whole days comes back as last_days)."""
    match condition:
        case All(conditions):
            return segment_pb2.Condition(
                all=segment_pb2.ConditionGroup(conditions=[condition_to_proto(c) for c in conditions])
            )
        case AnyOf(conditions):
            return segment_pb2.Condition(
                any=segment_pb2.ConditionGroup(conditions=[condition_to_proto(c) for c in conditions])
            )
        case Negate(child):
            return segment_pb2.Condition(
                negate=segment_pb2.Negation(condition=condition_to_proto(child))
            )
        case PropertyTest():
            return segment_pb2.Condition(property=_property_to_proto(condition))
        case Behaviour():
            return segment_pb2.Condition(behaviour=_behaviour_to_proto(condition))
        case SubscriberTest():
            return segment_pb2.Condition(subscriber=_subscriber_to_proto(condition))
        case TestProfile():
            return segment_pb2.Condition(test_profile=True)
    raise TypeError(f"not a condition: {condition!r}")


def segment_to_proto(segment: Segment) -> segment_pb2.Segment:
    return segment_pb2.Segment(
        segment_id=segment.segment_id,
        display_name=segment.display_name,
        description=segment.description,
        labels=segment.labels,
        definition=segment_pb2.SegmentDefinition(condition=condition_to_proto(segment.definition)),
        create_time=_stamp(segment.create_time),
        update_time=_stamp(segment.update_time),
    )
