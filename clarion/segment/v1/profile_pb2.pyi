import datetime

from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PropertyValue(_message.Message):
    __slots__ = ("string_value", "number_value", "bool_value", "timestamp_value", "string_list_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    number_value: float
    bool_value: bool
    timestamp_value: _timestamp_pb2.Timestamp
    string_list_value: StringList
    def __init__(self, string_value: _Optional[str] = ..., number_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., timestamp_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., string_list_value: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Property(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: PropertyValue
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[PropertyValue, _Mapping]] = ...) -> None: ...

class PropertyOperation(_message.Message):
    __slots__ = ("name", "set", "unset", "increment", "append")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    UNSET_FIELD_NUMBER: _ClassVar[int]
    INCREMENT_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    set: PropertyValue
    unset: bool
    increment: float
    append: StringList
    def __init__(self, name: _Optional[str] = ..., set: _Optional[_Union[PropertyValue, _Mapping]] = ..., unset: _Optional[bool] = ..., increment: _Optional[float] = ..., append: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class ProfileUpdate(_message.Message):
    __slots__ = ("profile_id", "operations", "test_profile")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    TEST_PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    operations: _containers.RepeatedCompositeFieldContainer[PropertyOperation]
    test_profile: bool
    def __init__(self, profile_id: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[PropertyOperation, _Mapping]]] = ..., test_profile: _Optional[bool] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("profile_id", "properties", "test_profile", "subscriber_ids", "create_time", "update_time")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    TEST_PROFILE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    properties: _containers.RepeatedCompositeFieldContainer[Property]
    test_profile: bool
    subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, profile_id: _Optional[str] = ..., properties: _Optional[_Iterable[_Union[Property, _Mapping]]] = ..., test_profile: _Optional[bool] = ..., subscriber_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "name", "profile_id", "subscriber_id", "occur_time", "properties")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    name: str
    profile_id: str
    subscriber_id: str
    occur_time: _timestamp_pb2.Timestamp
    properties: _containers.RepeatedCompositeFieldContainer[Property]
    def __init__(self, event_id: _Optional[str] = ..., name: _Optional[str] = ..., profile_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., properties: _Optional[_Iterable[_Union[Property, _Mapping]]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("ok", "duplicate", "reason", "field", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    duplicate: bool
    reason: str
    field: str
    message: str
    def __init__(self, ok: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
