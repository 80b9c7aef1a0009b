from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import profile_pb2 as _profile_pb2
from clarion.segment.v1 import subscriber_pb2 as _subscriber_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterSubscriberRequest(_message.Message):
    __slots__ = ("push_subscription", "browser", "timezone", "profile_id")
    PUSH_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    push_subscription: _common_pb2.PushSubscription
    browser: _common_pb2.Browser
    timezone: str
    profile_id: str
    def __init__(self, push_subscription: _Optional[_Union[_common_pb2.PushSubscription, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., timezone: _Optional[str] = ..., profile_id: _Optional[str] = ...) -> None: ...

class RegisterSubscriberResponse(_message.Message):
    __slots__ = ("subscriber", "created")
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    subscriber: _subscriber_pb2.Subscriber
    created: bool
    def __init__(self, subscriber: _Optional[_Union[_subscriber_pb2.Subscriber, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class UnsubscribeSubscriberRequest(_message.Message):
    __slots__ = ("subscriber_id", "reason")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    reason: str
    def __init__(self, subscriber_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UnsubscribeSubscriberResponse(_message.Message):
    __slots__ = ("subscriber",)
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    subscriber: _subscriber_pb2.Subscriber
    def __init__(self, subscriber: _Optional[_Union[_subscriber_pb2.Subscriber, _Mapping]] = ...) -> None: ...

class GetSubscriberRequest(_message.Message):
    __slots__ = ("subscriber_id",)
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    def __init__(self, subscriber_id: _Optional[str] = ...) -> None: ...

class GetSubscriberResponse(_message.Message):
    __slots__ = ("subscriber",)
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    subscriber: _subscriber_pb2.Subscriber
    def __init__(self, subscriber: _Optional[_Union[_subscriber_pb2.Subscriber, _Mapping]] = ...) -> None: ...

class ListSubscribersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscribersResponse(_message.Message):
    __slots__ = ("subscribers", "next_page_token")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[_subscriber_pb2.Subscriber]
    next_page_token: str
    def __init__(self, subscribers: _Optional[_Iterable[_Union[_subscriber_pb2.Subscriber, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BatchRegisterSubscribersRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RegisterSubscriberRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RegisterSubscriberRequest, _Mapping]]] = ...) -> None: ...

class BatchRegisterSubscribersResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RegisterSubscriberResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RegisterSubscriberResponse, _Mapping]]] = ...) -> None: ...

class UpsertProfilesRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[_profile_pb2.ProfileUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[_profile_pb2.ProfileUpdate, _Mapping]]] = ...) -> None: ...

class UpsertProfilesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_profile_pb2.ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_profile_pb2.ItemResult, _Mapping]]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("profile_id",)
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    def __init__(self, profile_id: _Optional[str] = ...) -> None: ...

class GetProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: _profile_pb2.Profile
    def __init__(self, profile: _Optional[_Union[_profile_pb2.Profile, _Mapping]] = ...) -> None: ...

class TrackEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_profile_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_profile_pb2.Event, _Mapping]]] = ...) -> None: ...

class TrackEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_profile_pb2.ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_profile_pb2.ItemResult, _Mapping]]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("subscriber_id", "profile_id")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    profile_id: str
    def __init__(self, subscriber_id: _Optional[str] = ..., profile_id: _Optional[str] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("profile", "attributed_events")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    profile: _profile_pb2.Profile
    attributed_events: int
    def __init__(self, profile: _Optional[_Union[_profile_pb2.Profile, _Mapping]] = ..., attributed_events: _Optional[int] = ...) -> None: ...
