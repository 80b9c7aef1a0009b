import datetime

from clarion.campaign.v1 import campaign_pb2 as _campaign_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Site(_message.Message):
    __slots__ = ("site_id", "name", "vapid_public_key", "vapid_subject", "create_time", "vapid_keys", "timezone", "delivery_policy", "home_url")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEYS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_POLICY_FIELD_NUMBER: _ClassVar[int]
    HOME_URL_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    vapid_public_key: bytes
    vapid_subject: str
    create_time: _timestamp_pb2.Timestamp
    vapid_keys: _containers.RepeatedCompositeFieldContainer[VapidKey]
    timezone: str
    delivery_policy: _campaign_pb2.DeliveryPolicy
    home_url: str
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., vapid_public_key: _Optional[bytes] = ..., vapid_subject: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vapid_keys: _Optional[_Iterable[_Union[VapidKey, _Mapping]]] = ..., timezone: _Optional[str] = ..., delivery_policy: _Optional[_Union[_campaign_pb2.DeliveryPolicy, _Mapping]] = ..., home_url: _Optional[str] = ...) -> None: ...

class VapidKey(_message.Message):
    __slots__ = ("vapid_key_id", "public_key", "current", "origin", "create_time")
    VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    vapid_key_id: str
    public_key: bytes
    current: bool
    origin: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, vapid_key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., current: _Optional[bool] = ..., origin: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
