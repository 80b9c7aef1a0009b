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
    __slots__ = ("site_id", "name", "vapid_public_key", "vapid_subject", "create_time", "vapid_keys", "timezone", "delivery_policy", "home_url", "legacy_safari")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEYS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_POLICY_FIELD_NUMBER: _ClassVar[int]
    HOME_URL_FIELD_NUMBER: _ClassVar[int]
    LEGACY_SAFARI_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    vapid_public_key: bytes
    vapid_subject: str
    create_time: _timestamp_pb2.Timestamp
    vapid_keys: _containers.RepeatedCompositeFieldContainer[VapidKey]
    timezone: str
    delivery_policy: _campaign_pb2.DeliveryPolicy
    home_url: str
    legacy_safari: LegacySafari
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., vapid_public_key: _Optional[bytes] = ..., vapid_subject: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vapid_keys: _Optional[_Iterable[_Union[VapidKey, _Mapping]]] = ..., timezone: _Optional[str] = ..., delivery_policy: _Optional[_Union[_campaign_pb2.DeliveryPolicy, _Mapping]] = ..., home_url: _Optional[str] = ..., legacy_safari: _Optional[_Union[LegacySafari, _Mapping]] = ...) -> None: ...

class LegacySafari(_message.Message):
    __slots__ = ("configured", "website_push_id", "website_name", "allowed_domains", "url_format_string", "apns_key_id", "apns_team_id", "certificate_subject", "certificate_expire_time", "update_time")
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    URL_FORMAT_STRING_FIELD_NUMBER: _ClassVar[int]
    APNS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    configured: bool
    website_push_id: str
    website_name: str
    allowed_domains: _containers.RepeatedScalarFieldContainer[str]
    url_format_string: str
    apns_key_id: str
    apns_team_id: str
    certificate_subject: str
    certificate_expire_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, configured: _Optional[bool] = ..., website_push_id: _Optional[str] = ..., website_name: _Optional[str] = ..., allowed_domains: _Optional[_Iterable[str]] = ..., url_format_string: _Optional[str] = ..., apns_key_id: _Optional[str] = ..., apns_team_id: _Optional[str] = ..., certificate_subject: _Optional[str] = ..., certificate_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LegacySafariIcons(_message.Message):
    __slots__ = ("icon_16x16", "icon_16x16_2x", "icon_32x32", "icon_32x32_2x", "icon_128x128", "icon_128x128_2x")
    ICON_16X16_FIELD_NUMBER: _ClassVar[int]
    ICON_16X16_2X_FIELD_NUMBER: _ClassVar[int]
    ICON_32X32_FIELD_NUMBER: _ClassVar[int]
    ICON_32X32_2X_FIELD_NUMBER: _ClassVar[int]
    ICON_128X128_FIELD_NUMBER: _ClassVar[int]
    ICON_128X128_2X_FIELD_NUMBER: _ClassVar[int]
    icon_16x16: bytes
    icon_16x16_2x: bytes
    icon_32x32: bytes
    icon_32x32_2x: bytes
    icon_128x128: bytes
    icon_128x128_2x: bytes
    def __init__(self, icon_16x16: _Optional[bytes] = ..., icon_16x16_2x: _Optional[bytes] = ..., icon_32x32: _Optional[bytes] = ..., icon_32x32_2x: _Optional[bytes] = ..., icon_128x128: _Optional[bytes] = ..., icon_128x128_2x: _Optional[bytes] = ...) -> None: ...

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
