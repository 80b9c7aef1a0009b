import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.delivery.v1 import delivery_pb2 as _delivery_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResolveClickTargetRequest(_message.Message):
    __slots__ = ("run_id", "subscriber_id", "button")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    BUTTON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    button: int
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., button: _Optional[int] = ...) -> None: ...

class ResolveClickTargetResponse(_message.Message):
    __slots__ = ("url", "action", "sent", "sent_time", "campaign_id")
    URL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    url: str
    action: str
    sent: bool
    sent_time: _timestamp_pb2.Timestamp
    campaign_id: str
    def __init__(self, url: _Optional[str] = ..., action: _Optional[str] = ..., sent: _Optional[bool] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class PreviewDeliveryPlanRequest(_message.Message):
    __slots__ = ("campaign_id", "audience", "timing", "policy", "ttl_seconds", "variants", "start_after_seconds")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    audience: _delivery_pb2.RunAudience
    timing: _delivery_pb2.RunTiming
    policy: _delivery_pb2.RunPolicy
    ttl_seconds: int
    variants: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.RunVariant]
    start_after_seconds: int
    def __init__(self, campaign_id: _Optional[str] = ..., audience: _Optional[_Union[_delivery_pb2.RunAudience, _Mapping]] = ..., timing: _Optional[_Union[_delivery_pb2.RunTiming, _Mapping]] = ..., policy: _Optional[_Union[_delivery_pb2.RunPolicy, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., variants: _Optional[_Iterable[_Union[_delivery_pb2.RunVariant, _Mapping]]] = ..., start_after_seconds: _Optional[int] = ...) -> None: ...

class PreviewDeliveryPlanResponse(_message.Message):
    __slots__ = ("snapshot_time", "audience", "rows")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    audience: int
    rows: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.PlanRow]
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[_delivery_pb2.PlanRow, _Mapping]]] = ...) -> None: ...

class StartDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id", "campaign_id", "content", "audience", "timing", "policy", "test", "variants", "conversion_goal", "description")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_GOAL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    content: _delivery_pb2.RunContent
    audience: _delivery_pb2.RunAudience
    timing: _delivery_pb2.RunTiming
    policy: _delivery_pb2.RunPolicy
    test: bool
    variants: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.RunVariant]
    conversion_goal: _common_pb2.ConversionGoal
    description: _common_pb2.RunDescription
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., content: _Optional[_Union[_delivery_pb2.RunContent, _Mapping]] = ..., audience: _Optional[_Union[_delivery_pb2.RunAudience, _Mapping]] = ..., timing: _Optional[_Union[_delivery_pb2.RunTiming, _Mapping]] = ..., policy: _Optional[_Union[_delivery_pb2.RunPolicy, _Mapping]] = ..., test: _Optional[bool] = ..., variants: _Optional[_Iterable[_Union[_delivery_pb2.RunVariant, _Mapping]]] = ..., conversion_goal: _Optional[_Union[_common_pb2.ConversionGoal, _Mapping]] = ..., description: _Optional[_Union[_common_pb2.RunDescription, _Mapping]] = ...) -> None: ...

class StartDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run",)
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ...) -> None: ...

class GetDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run",)
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ...) -> None: ...

class BatchGetDeliveryRunsRequest(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetDeliveryRunsResponse(_message.Message):
    __slots__ = ("delivery_runs",)
    DELIVERY_RUNS_FIELD_NUMBER: _ClassVar[int]
    delivery_runs: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.DeliveryRun]
    def __init__(self, delivery_runs: _Optional[_Iterable[_Union[_delivery_pb2.DeliveryRun, _Mapping]]] = ...) -> None: ...

class GetRecipientOutcomeRequest(_message.Message):
    __slots__ = ("run_id", "subscriber_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class GetRecipientOutcomeResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: _delivery_pb2.RecipientOutcome
    def __init__(self, outcome: _Optional[_Union[_delivery_pb2.RecipientOutcome, _Mapping]] = ...) -> None: ...

class CancelDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run", "cancelled")
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    cancelled: int
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ..., cancelled: _Optional[int] = ...) -> None: ...
