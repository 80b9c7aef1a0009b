import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import profile_pb2 as _profile_pb2
from clarion.segment.v1 import segment_pb2 as _segment_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_RUN_STATE_UNSPECIFIED: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_PREPARING: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_SENDING: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_DONE: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_FAILED: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_CANCELLED: _ClassVar[DeliveryRunState]

class RunFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_FAILURE_UNSPECIFIED: _ClassVar[RunFailure]
    RUN_FAILURE_AUDIENCE_REFUSED: _ClassVar[RunFailure]
    RUN_FAILURE_AUDIENCE_UNAVAILABLE: _ClassVar[RunFailure]
DELIVERY_RUN_STATE_UNSPECIFIED: DeliveryRunState
DELIVERY_RUN_STATE_PREPARING: DeliveryRunState
DELIVERY_RUN_STATE_SENDING: DeliveryRunState
DELIVERY_RUN_STATE_DONE: DeliveryRunState
DELIVERY_RUN_STATE_FAILED: DeliveryRunState
DELIVERY_RUN_STATE_CANCELLED: DeliveryRunState
RUN_FAILURE_UNSPECIFIED: RunFailure
RUN_FAILURE_AUDIENCE_REFUSED: RunFailure
RUN_FAILURE_AUDIENCE_UNAVAILABLE: RunFailure

class RunContent(_message.Message):
    __slots__ = ("payload", "ttl_seconds", "urgency", "profile_properties", "suppress_missing_values", "missing_value_text", "browser_payloads", "topic")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    SUPPRESS_MISSING_VALUES_FIELD_NUMBER: _ClassVar[int]
    MISSING_VALUE_TEXT_FIELD_NUMBER: _ClassVar[int]
    BROWSER_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    ttl_seconds: int
    urgency: _common_pb2.Urgency
    profile_properties: _containers.RepeatedScalarFieldContainer[str]
    suppress_missing_values: bool
    missing_value_text: str
    browser_payloads: _containers.RepeatedCompositeFieldContainer[BrowserPayload]
    topic: str
    def __init__(self, payload: _Optional[bytes] = ..., ttl_seconds: _Optional[int] = ..., urgency: _Optional[_Union[_common_pb2.Urgency, str]] = ..., profile_properties: _Optional[_Iterable[str]] = ..., suppress_missing_values: _Optional[bool] = ..., missing_value_text: _Optional[str] = ..., browser_payloads: _Optional[_Iterable[_Union[BrowserPayload, _Mapping]]] = ..., topic: _Optional[str] = ...) -> None: ...

class RunVariant(_message.Message):
    __slots__ = ("variant_id", "weight_percent", "content")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    weight_percent: int
    content: RunContent
    def __init__(self, variant_id: _Optional[str] = ..., weight_percent: _Optional[int] = ..., content: _Optional[_Union[RunContent, _Mapping]] = ...) -> None: ...

class AudienceSample(_message.Message):
    __slots__ = ("start_basis_points", "end_basis_points")
    START_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    END_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    start_basis_points: int
    end_basis_points: int
    def __init__(self, start_basis_points: _Optional[int] = ..., end_basis_points: _Optional[int] = ...) -> None: ...

class BrowserPayload(_message.Message):
    __slots__ = ("browser", "payload")
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    browser: _common_pb2.Browser
    payload: bytes
    def __init__(self, browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class RunPolicy(_message.Message):
    __slots__ = ("cap_per_day", "cap_per_week", "quiet_start", "quiet_end", "quiet_delay", "campaign_max_per_minute", "site_max_per_minute", "control_group_percent", "default_timezone")
    CAP_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    CAP_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    QUIET_START_FIELD_NUMBER: _ClassVar[int]
    QUIET_END_FIELD_NUMBER: _ClassVar[int]
    QUIET_DELAY_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    SITE_MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    cap_per_day: int
    cap_per_week: int
    quiet_start: str
    quiet_end: str
    quiet_delay: bool
    campaign_max_per_minute: int
    site_max_per_minute: int
    control_group_percent: int
    default_timezone: str
    def __init__(self, cap_per_day: _Optional[int] = ..., cap_per_week: _Optional[int] = ..., quiet_start: _Optional[str] = ..., quiet_end: _Optional[str] = ..., quiet_delay: _Optional[bool] = ..., campaign_max_per_minute: _Optional[int] = ..., site_max_per_minute: _Optional[int] = ..., control_group_percent: _Optional[int] = ..., default_timezone: _Optional[str] = ...) -> None: ...

class RecipientContext(_message.Message):
    __slots__ = ("profile_id", "subscriber_id", "event_properties")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    subscriber_id: str
    event_properties: _containers.RepeatedCompositeFieldContainer[_profile_pb2.Property]
    def __init__(self, profile_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., event_properties: _Optional[_Iterable[_Union[_profile_pb2.Property, _Mapping]]] = ...) -> None: ...

class RunAudience(_message.Message):
    __slots__ = ("subscriber_ids", "selector", "profile_ids", "contexts", "sample")
    SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: _segment_pb2.AudienceSelector
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    contexts: _containers.RepeatedCompositeFieldContainer[RecipientContext]
    sample: AudienceSample
    def __init__(self, subscriber_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., profile_ids: _Optional[_Iterable[str]] = ..., contexts: _Optional[_Iterable[_Union[RecipientContext, _Mapping]]] = ..., sample: _Optional[_Union[AudienceSample, _Mapping]] = ...) -> None: ...

class RunTiming(_message.Message):
    __slots__ = ("local_time", "default_timezone", "next_day_if_passed", "cut_off_time")
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    NEXT_DAY_IF_PASSED_FIELD_NUMBER: _ClassVar[int]
    CUT_OFF_TIME_FIELD_NUMBER: _ClassVar[int]
    local_time: str
    default_timezone: str
    next_day_if_passed: bool
    cut_off_time: _timestamp_pb2.Timestamp
    def __init__(self, local_time: _Optional[str] = ..., default_timezone: _Optional[str] = ..., next_day_if_passed: _Optional[bool] = ..., cut_off_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunProgress(_message.Message):
    __slots__ = ("resolved", "queued", "pending", "sent", "failed", "suppressed", "expired")
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    resolved: int
    queued: int
    pending: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    def __init__(self, resolved: _Optional[int] = ..., queued: _Optional[int] = ..., pending: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class DeliveryRun(_message.Message):
    __slots__ = ("run_id", "campaign_id", "state", "progress", "failure", "failure_message", "create_time", "prepare_time", "finish_time", "held_push_services")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PREPARE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    HELD_PUSH_SERVICES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    state: DeliveryRunState
    progress: RunProgress
    failure: RunFailure
    failure_message: str
    create_time: _timestamp_pb2.Timestamp
    prepare_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    held_push_services: _containers.RepeatedCompositeFieldContainer[_common_pb2.HeldPushService]
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., state: _Optional[_Union[DeliveryRunState, str]] = ..., progress: _Optional[_Union[RunProgress, _Mapping]] = ..., failure: _Optional[_Union[RunFailure, str]] = ..., failure_message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prepare_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., held_push_services: _Optional[_Iterable[_Union[_common_pb2.HeldPushService, _Mapping]]] = ...) -> None: ...

class Recipient(_message.Message):
    __slots__ = ("subscriber_id", "profile_id", "timezone", "variant", "due_time", "browser", "target")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    profile_id: str
    timezone: str
    variant: str
    due_time: _timestamp_pb2.Timestamp
    browser: _common_pb2.Browser
    target: _common_pb2.PushTarget
    def __init__(self, subscriber_id: _Optional[str] = ..., profile_id: _Optional[str] = ..., timezone: _Optional[str] = ..., variant: _Optional[str] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., target: _Optional[_Union[_common_pb2.PushTarget, _Mapping]] = ...) -> None: ...

class PlanRow(_message.Message):
    __slots__ = ("hour_start", "browser", "variant_id", "sent", "suppressed")
    HOUR_START_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    hour_start: _timestamp_pb2.Timestamp
    browser: _common_pb2.Browser
    variant_id: str
    sent: int
    suppressed: _containers.RepeatedCompositeFieldContainer[PlanSuppression]
    def __init__(self, hour_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., variant_id: _Optional[str] = ..., sent: _Optional[int] = ..., suppressed: _Optional[_Iterable[_Union[PlanSuppression, _Mapping]]] = ...) -> None: ...

class PlanSuppression(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.DeliveryReason
    count: int
    def __init__(self, reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., count: _Optional[int] = ...) -> None: ...

class RecipientOutcome(_message.Message):
    __slots__ = ("subscriber_id", "status", "reason", "attempts", "finish_time", "variant", "due_time", "attempt_history", "queue_time")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_HISTORY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    status: _common_pb2.DeliveryStatus
    reason: _common_pb2.DeliveryReason
    attempts: int
    finish_time: _timestamp_pb2.Timestamp
    variant: str
    due_time: _timestamp_pb2.Timestamp
    attempt_history: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeliveryAttempt]
    queue_time: _timestamp_pb2.Timestamp
    def __init__(self, subscriber_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DeliveryStatus, str]] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., attempts: _Optional[int] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., variant: _Optional[str] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt_history: _Optional[_Iterable[_Union[_common_pb2.DeliveryAttempt, _Mapping]]] = ..., queue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
