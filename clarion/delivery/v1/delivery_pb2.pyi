import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_RUN_STATE_UNSPECIFIED: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_QUEUEING: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_SENDING: _ClassVar[DeliveryRunState]
    DELIVERY_RUN_STATE_DONE: _ClassVar[DeliveryRunState]
DELIVERY_RUN_STATE_UNSPECIFIED: DeliveryRunState
DELIVERY_RUN_STATE_QUEUEING: DeliveryRunState
DELIVERY_RUN_STATE_SENDING: DeliveryRunState
DELIVERY_RUN_STATE_DONE: DeliveryRunState

class Recipient(_message.Message):
    __slots__ = ("subscriber_id", "push_subscription", "browser")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUSH_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    push_subscription: _common_pb2.PushSubscription
    browser: _common_pb2.Browser
    def __init__(self, subscriber_id: _Optional[str] = ..., push_subscription: _Optional[_Union[_common_pb2.PushSubscription, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ...) -> None: ...

class DeliveryRun(_message.Message):
    __slots__ = ("run_id", "campaign_id", "state", "total", "pending", "sent", "failed", "suppressed", "expired", "create_time", "finish_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    state: DeliveryRunState
    total: int
    pending: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., state: _Optional[_Union[DeliveryRunState, str]] = ..., total: _Optional[int] = ..., pending: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecipientOutcome(_message.Message):
    __slots__ = ("subscriber_id", "status", "reason", "attempts", "finish_time")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    status: _common_pb2.DeliveryStatus
    reason: str
    attempts: int
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, subscriber_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DeliveryStatus, str]] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
