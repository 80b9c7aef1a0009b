from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_FORMAT_UNSPECIFIED: _ClassVar[TextFormat]
    TEXT_FORMAT_ID: _ClassVar[TextFormat]
    TEXT_FORMAT_URL: _ClassVar[TextFormat]
    TEXT_FORMAT_LINE: _ClassVar[TextFormat]
TEXT_FORMAT_UNSPECIFIED: TextFormat
TEXT_FORMAT_ID: TextFormat
TEXT_FORMAT_URL: TextFormat
TEXT_FORMAT_LINE: TextFormat
CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
constraints: _descriptor.FieldDescriptor

class FieldConstraints(_message.Message):
    __slots__ = ("max_length", "min_length", "max_items", "min", "max", "format", "reason", "too_many_reason")
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TOO_MANY_REASON_FIELD_NUMBER: _ClassVar[int]
    max_length: int
    min_length: int
    max_items: int
    min: int
    max: int
    format: TextFormat
    reason: str
    too_many_reason: str
    def __init__(self, max_length: _Optional[int] = ..., min_length: _Optional[int] = ..., max_items: _Optional[int] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., format: _Optional[_Union[TextFormat, str]] = ..., reason: _Optional[str] = ..., too_many_reason: _Optional[str] = ...) -> None: ...
