import datetime

from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Site(_message.Message):
    __slots__ = ("site_id", "name", "vapid_public_key", "vapid_subject", "create_time")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    vapid_public_key: bytes
    vapid_subject: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., vapid_public_key: _Optional[bytes] = ..., vapid_subject: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
