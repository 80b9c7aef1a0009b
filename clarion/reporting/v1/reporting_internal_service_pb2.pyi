from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.reporting.v1 import reporting_pb2 as _reporting_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordRunAudienceRequest(_message.Message):
    __slots__ = ("run_id", "campaign_id", "audience", "test", "conversion_goal", "description")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_GOAL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    audience: int
    test: bool
    conversion_goal: _common_pb2.ConversionGoal
    description: _common_pb2.RunDescription
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., audience: _Optional[int] = ..., test: _Optional[bool] = ..., conversion_goal: _Optional[_Union[_common_pb2.ConversionGoal, _Mapping]] = ..., description: _Optional[_Union[_common_pb2.RunDescription, _Mapping]] = ...) -> None: ...

class RecordRunAudienceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RecordDeliveryOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[_reporting_pb2.DeliveryOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[_reporting_pb2.DeliveryOutcome, _Mapping]]] = ...) -> None: ...

class RecordDeliveryOutcomesResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class RecordEngagementEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_reporting_pb2.EngagementEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_reporting_pb2.EngagementEvent, _Mapping]]] = ...) -> None: ...

class RecordEngagementEventsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...
