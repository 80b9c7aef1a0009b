import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import profile_pb2 as _profile_pb2
from clarion.segment.v1 import segment_pb2 as _segment_pb2
from clarion.segment.v1 import subscriber_pb2 as _subscriber_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckEventNamesRequest(_message.Message):
    __slots__ = ("event_names",)
    EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    event_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_names: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckEventNamesResponse(_message.Message):
    __slots__ = ("unseen_event_names",)
    UNSEEN_EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    unseen_event_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unseen_event_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAudienceMembersRequest(_message.Message):
    __slots__ = ("snapshot_time", "subscriber_ids", "page_size", "page_token", "audience", "audience_key", "profile_ids", "profile_properties")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_KEY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    audience: _segment_pb2.AudienceSelector
    audience_key: str
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    profile_properties: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subscriber_ids: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., audience_key: _Optional[str] = ..., profile_ids: _Optional[_Iterable[str]] = ..., profile_properties: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAudienceMembersResponse(_message.Message):
    __slots__ = ("members", "next_page_token")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_subscriber_pb2.AudienceMember]
    next_page_token: str
    def __init__(self, members: _Optional[_Iterable[_Union[_subscriber_pb2.AudienceMember, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CheckSubscribersRequest(_message.Message):
    __slots__ = ("subscriber_ids",)
    SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subscriber_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckSubscribersResponse(_message.Message):
    __slots__ = ("inactive_subscriber_ids",)
    INACTIVE_SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    inactive_subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, inactive_subscriber_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchUnsubscribeSubscribersRequest(_message.Message):
    __slots__ = ("unsubscriptions",)
    UNSUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    unsubscriptions: _containers.RepeatedCompositeFieldContainer[_subscriber_pb2.Unsubscription]
    def __init__(self, unsubscriptions: _Optional[_Iterable[_Union[_subscriber_pb2.Unsubscription, _Mapping]]] = ...) -> None: ...

class BatchUnsubscribeSubscribersResponse(_message.Message):
    __slots__ = ("unsubscribed",)
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    unsubscribed: int
    def __init__(self, unsubscribed: _Optional[int] = ...) -> None: ...

class TrackSystemEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_profile_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_profile_pb2.Event, _Mapping]]] = ...) -> None: ...

class TrackSystemEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_profile_pb2.ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_profile_pb2.ItemResult, _Mapping]]] = ...) -> None: ...

class ValidateAudienceRequest(_message.Message):
    __slots__ = ("audience",)
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    audience: _segment_pb2.AudienceSelector
    def __init__(self, audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ...) -> None: ...

class ValidateAudienceResponse(_message.Message):
    __slots__ = ("possible_browsers",)
    POSSIBLE_BROWSERS_FIELD_NUMBER: _ClassVar[int]
    possible_browsers: _containers.RepeatedScalarFieldContainer[_common_pb2.Browser]
    def __init__(self, possible_browsers: _Optional[_Iterable[_Union[_common_pb2.Browser, str]]] = ...) -> None: ...

class ListEventFeedRequest(_message.Message):
    __slots__ = ("cursor", "page_size", "event_names", "start_at_end")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    START_AT_END_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    page_size: int
    event_names: _containers.RepeatedScalarFieldContainer[str]
    start_at_end: bool
    def __init__(self, cursor: _Optional[str] = ..., page_size: _Optional[int] = ..., event_names: _Optional[_Iterable[str]] = ..., start_at_end: _Optional[bool] = ...) -> None: ...

class ListEventFeedResponse(_message.Message):
    __slots__ = ("events", "next_cursor")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FeedEvent]
    next_cursor: str
    def __init__(self, events: _Optional[_Iterable[_Union[FeedEvent, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class FeedEvent(_message.Message):
    __slots__ = ("event", "receive_time")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    event: _profile_pb2.Event
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, event: _Optional[_Union[_profile_pb2.Event, _Mapping]] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
