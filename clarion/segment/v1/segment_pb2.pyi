import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import profile_pb2 as _profile_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PropertyOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPERTY_OPERATOR_UNSPECIFIED: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_EQUALS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_NOT_EQUALS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_IN: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_CONTAINS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_STARTS_WITH: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_GREATER_THAN: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_LESS_THAN: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_BETWEEN: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_EXISTS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_NOT_EXISTS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_WITHIN_LAST_DAYS: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO: _ClassVar[PropertyOperator]
    PROPERTY_OPERATOR_WITHIN_NEXT_DAYS: _ClassVar[PropertyOperator]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_AT_LEAST: _ClassVar[Comparison]
    COMPARISON_AT_MOST: _ClassVar[Comparison]
    COMPARISON_EXACTLY: _ClassVar[Comparison]
    COMPARISON_BETWEEN: _ClassVar[Comparison]
    COMPARISON_MORE_THAN: _ClassVar[Comparison]
    COMPARISON_LESS_THAN: _ClassVar[Comparison]

class AggregateFunction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATE_FUNCTION_UNSPECIFIED: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_SUM: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_AVERAGE: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_MIN: _ClassVar[AggregateFunction]
    AGGREGATE_FUNCTION_MAX: _ClassVar[AggregateFunction]
PROPERTY_OPERATOR_UNSPECIFIED: PropertyOperator
PROPERTY_OPERATOR_EQUALS: PropertyOperator
PROPERTY_OPERATOR_NOT_EQUALS: PropertyOperator
PROPERTY_OPERATOR_IN: PropertyOperator
PROPERTY_OPERATOR_CONTAINS: PropertyOperator
PROPERTY_OPERATOR_STARTS_WITH: PropertyOperator
PROPERTY_OPERATOR_GREATER_THAN: PropertyOperator
PROPERTY_OPERATOR_LESS_THAN: PropertyOperator
PROPERTY_OPERATOR_BETWEEN: PropertyOperator
PROPERTY_OPERATOR_EXISTS: PropertyOperator
PROPERTY_OPERATOR_NOT_EXISTS: PropertyOperator
PROPERTY_OPERATOR_WITHIN_LAST_DAYS: PropertyOperator
PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO: PropertyOperator
PROPERTY_OPERATOR_WITHIN_NEXT_DAYS: PropertyOperator
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_AT_LEAST: Comparison
COMPARISON_AT_MOST: Comparison
COMPARISON_EXACTLY: Comparison
COMPARISON_BETWEEN: Comparison
COMPARISON_MORE_THAN: Comparison
COMPARISON_LESS_THAN: Comparison
AGGREGATE_FUNCTION_UNSPECIFIED: AggregateFunction
AGGREGATE_FUNCTION_SUM: AggregateFunction
AGGREGATE_FUNCTION_AVERAGE: AggregateFunction
AGGREGATE_FUNCTION_MIN: AggregateFunction
AGGREGATE_FUNCTION_MAX: AggregateFunction

class SegmentDefinition(_message.Message):
    __slots__ = ("condition",)
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    condition: Condition
    def __init__(self, condition: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("all", "any", "negate", "property", "behaviour", "subscriber", "test_profile")
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    TEST_PROFILE_FIELD_NUMBER: _ClassVar[int]
    all: ConditionGroup
    any: ConditionGroup
    negate: Negation
    property: PropertyCondition
    behaviour: BehaviourCondition
    subscriber: SubscriberCondition
    test_profile: bool
    def __init__(self, all: _Optional[_Union[ConditionGroup, _Mapping]] = ..., any: _Optional[_Union[ConditionGroup, _Mapping]] = ..., negate: _Optional[_Union[Negation, _Mapping]] = ..., property: _Optional[_Union[PropertyCondition, _Mapping]] = ..., behaviour: _Optional[_Union[BehaviourCondition, _Mapping]] = ..., subscriber: _Optional[_Union[SubscriberCondition, _Mapping]] = ..., test_profile: _Optional[bool] = ...) -> None: ...

class ConditionGroup(_message.Message):
    __slots__ = ("conditions",)
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    def __init__(self, conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ...) -> None: ...

class Negation(_message.Message):
    __slots__ = ("condition",)
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    condition: Condition
    def __init__(self, condition: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class PropertyCondition(_message.Message):
    __slots__ = ("name", "operator", "values", "days")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    name: str
    operator: PropertyOperator
    values: _containers.RepeatedCompositeFieldContainer[_profile_pb2.PropertyValue]
    days: int
    def __init__(self, name: _Optional[str] = ..., operator: _Optional[_Union[PropertyOperator, str]] = ..., values: _Optional[_Iterable[_Union[_profile_pb2.PropertyValue, _Mapping]]] = ..., days: _Optional[int] = ...) -> None: ...

class CountComparison(_message.Message):
    __slots__ = ("comparison", "value", "upper")
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    comparison: Comparison
    value: int
    upper: int
    def __init__(self, comparison: _Optional[_Union[Comparison, str]] = ..., value: _Optional[int] = ..., upper: _Optional[int] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("last_hours", "last_days", "between", "ever")
    LAST_HOURS_FIELD_NUMBER: _ClassVar[int]
    LAST_DAYS_FIELD_NUMBER: _ClassVar[int]
    BETWEEN_FIELD_NUMBER: _ClassVar[int]
    EVER_FIELD_NUMBER: _ClassVar[int]
    last_hours: int
    last_days: int
    between: TimeRange
    ever: bool
    def __init__(self, last_hours: _Optional[int] = ..., last_days: _Optional[int] = ..., between: _Optional[_Union[TimeRange, _Mapping]] = ..., ever: _Optional[bool] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AggregateCondition(_message.Message):
    __slots__ = ("function", "property", "comparison", "value", "upper")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    function: AggregateFunction
    property: str
    comparison: Comparison
    value: float
    upper: float
    def __init__(self, function: _Optional[_Union[AggregateFunction, str]] = ..., property: _Optional[str] = ..., comparison: _Optional[_Union[Comparison, str]] = ..., value: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class BehaviourCondition(_message.Message):
    __slots__ = ("event_name", "did_not", "count", "window", "event_filters", "aggregate")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DID_NOT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    EVENT_FILTERS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    did_not: bool
    count: CountComparison
    window: TimeWindow
    event_filters: _containers.RepeatedCompositeFieldContainer[PropertyCondition]
    aggregate: AggregateCondition
    def __init__(self, event_name: _Optional[str] = ..., did_not: _Optional[bool] = ..., count: _Optional[_Union[CountComparison, _Mapping]] = ..., window: _Optional[_Union[TimeWindow, _Mapping]] = ..., event_filters: _Optional[_Iterable[_Union[PropertyCondition, _Mapping]]] = ..., aggregate: _Optional[_Union[AggregateCondition, _Mapping]] = ...) -> None: ...

class SubscriberCondition(_message.Message):
    __slots__ = ("browsers", "timezones", "subscribed_before", "subscribed_after", "reachable")
    BROWSERS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_AFTER_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    browsers: _containers.RepeatedScalarFieldContainer[_common_pb2.Browser]
    timezones: _containers.RepeatedScalarFieldContainer[str]
    subscribed_before: _timestamp_pb2.Timestamp
    subscribed_after: _timestamp_pb2.Timestamp
    reachable: bool
    def __init__(self, browsers: _Optional[_Iterable[_Union[_common_pb2.Browser, str]]] = ..., timezones: _Optional[_Iterable[str]] = ..., subscribed_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subscribed_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reachable: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("segment_id", "display_name", "description", "labels", "definition", "create_time", "update_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    display_name: str
    description: str
    labels: _containers.ScalarMap[str, str]
    definition: SegmentDefinition
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, segment_id: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., definition: _Optional[_Union[SegmentDefinition, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AudienceSelector(_message.Message):
    __slots__ = ("segment_id", "definition")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    definition: SegmentDefinition
    def __init__(self, segment_id: _Optional[str] = ..., definition: _Optional[_Union[SegmentDefinition, _Mapping]] = ...) -> None: ...

class BrowserReach(_message.Message):
    __slots__ = ("browser", "subscribers")
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    browser: _common_pb2.Browser
    subscribers: int
    def __init__(self, browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., subscribers: _Optional[int] = ...) -> None: ...
