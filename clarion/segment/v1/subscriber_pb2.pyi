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

class SubscriberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIBER_STATE_UNSPECIFIED: _ClassVar[SubscriberState]
    SUBSCRIBER_STATE_ACTIVE: _ClassVar[SubscriberState]
    SUBSCRIBER_STATE_UNSUBSCRIBED: _ClassVar[SubscriberState]
SUBSCRIBER_STATE_UNSPECIFIED: SubscriberState
SUBSCRIBER_STATE_ACTIVE: SubscriberState
SUBSCRIBER_STATE_UNSUBSCRIBED: SubscriberState

class Subscriber(_message.Message):
    __slots__ = ("subscriber_id", "push_subscription", "browser", "timezone", "profile_id", "state", "unsubscribe_reason", "create_time", "update_time", "vapid_key_id", "apns_device")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUSH_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_DEVICE_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    push_subscription: _common_pb2.PushSubscription
    browser: _common_pb2.Browser
    timezone: str
    profile_id: str
    state: SubscriberState
    unsubscribe_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    vapid_key_id: str
    apns_device: _common_pb2.ApnsDevice
    def __init__(self, subscriber_id: _Optional[str] = ..., push_subscription: _Optional[_Union[_common_pb2.PushSubscription, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., timezone: _Optional[str] = ..., profile_id: _Optional[str] = ..., state: _Optional[_Union[SubscriberState, str]] = ..., unsubscribe_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vapid_key_id: _Optional[str] = ..., apns_device: _Optional[_Union[_common_pb2.ApnsDevice, _Mapping]] = ...) -> None: ...

class AudienceMember(_message.Message):
    __slots__ = ("subscriber_id", "profile_id", "timezone", "browser", "target", "unsubscribed", "vapid_key_id", "profile_properties")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    profile_id: str
    timezone: str
    browser: _common_pb2.Browser
    target: _common_pb2.PushTarget
    unsubscribed: bool
    vapid_key_id: str
    profile_properties: _containers.RepeatedCompositeFieldContainer[_profile_pb2.Property]
    def __init__(self, subscriber_id: _Optional[str] = ..., profile_id: _Optional[str] = ..., timezone: _Optional[str] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., target: _Optional[_Union[_common_pb2.PushTarget, _Mapping]] = ..., unsubscribed: _Optional[bool] = ..., vapid_key_id: _Optional[str] = ..., profile_properties: _Optional[_Iterable[_Union[_profile_pb2.Property, _Mapping]]] = ...) -> None: ...

class Unsubscription(_message.Message):
    __slots__ = ("subscriber_id", "reason")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    reason: _common_pb2.DeliveryReason
    def __init__(self, subscriber_id: _Optional[str] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ...) -> None: ...
