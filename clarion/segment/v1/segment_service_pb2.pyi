import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import profile_pb2 as _profile_pb2
from clarion.segment.v1 import segment_pb2 as _segment_pb2
from clarion.segment.v1 import subscriber_pb2 as _subscriber_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_KIND_UNSPECIFIED: _ClassVar[ExportKind]
    EXPORT_KIND_SUBSCRIBERS: _ClassVar[ExportKind]
    EXPORT_KIND_PROFILES: _ClassVar[ExportKind]
EXPORT_KIND_UNSPECIFIED: ExportKind
EXPORT_KIND_SUBSCRIBERS: ExportKind
EXPORT_KIND_PROFILES: ExportKind

class RegisterSubscriberRequest(_message.Message):
    __slots__ = ("push_subscription", "browser", "timezone", "profile_id", "vapid_key_id", "apns_device")
    PUSH_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_DEVICE_FIELD_NUMBER: _ClassVar[int]
    push_subscription: _common_pb2.PushSubscription
    browser: _common_pb2.Browser
    timezone: str
    profile_id: str
    vapid_key_id: str
    apns_device: _common_pb2.ApnsDevice
    def __init__(self, push_subscription: _Optional[_Union[_common_pb2.PushSubscription, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., timezone: _Optional[str] = ..., profile_id: _Optional[str] = ..., vapid_key_id: _Optional[str] = ..., apns_device: _Optional[_Union[_common_pb2.ApnsDevice, _Mapping]] = ...) -> None: ...

class RegisterSubscriberResponse(_message.Message):
    __slots__ = ("subscriber", "created")
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    subscriber: _subscriber_pb2.Subscriber
    created: bool
    def __init__(self, subscriber: _Optional[_Union[_subscriber_pb2.Subscriber, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class UnsubscribeSubscriberRequest(_message.Message):
    __slots__ = ("subscriber_id", "reason", "apns_device")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APNS_DEVICE_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    reason: str
    apns_device: _common_pb2.ApnsDevice
    def __init__(self, subscriber_id: _Optional[str] = ..., reason: _Optional[str] = ..., apns_device: _Optional[_Union[_common_pb2.ApnsDevice, _Mapping]] = ...) -> None: ...

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

class CreateSegmentRequest(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class CreateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("segment_id",)
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    def __init__(self, segment_id: _Optional[str] = ...) -> None: ...

class GetSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class UpdateSegmentRequest(_message.Message):
    __slots__ = ("segment", "update_mask")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSegmentResponse(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _segment_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_segment_pb2.Segment, _Mapping]] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("segment_id",)
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    def __init__(self, segment_id: _Optional[str] = ...) -> None: ...

class DeleteSegmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments", "next_page_token")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[_segment_pb2.Segment]
    next_page_token: str
    def __init__(self, segments: _Optional[_Iterable[_Union[_segment_pb2.Segment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EstimateReachRequest(_message.Message):
    __slots__ = ("audience", "exact")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    audience: _segment_pb2.AudienceSelector
    exact: bool
    def __init__(self, audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., exact: _Optional[bool] = ...) -> None: ...

class EstimateReachResponse(_message.Message):
    __slots__ = ("profiles", "reachable_subscribers", "browsers", "exact", "sample_fraction", "margin_of_error_pct")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    BROWSERS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MARGIN_OF_ERROR_PCT_FIELD_NUMBER: _ClassVar[int]
    profiles: int
    reachable_subscribers: int
    browsers: _containers.RepeatedCompositeFieldContainer[_segment_pb2.BrowserReach]
    exact: bool
    sample_fraction: float
    margin_of_error_pct: float
    def __init__(self, profiles: _Optional[int] = ..., reachable_subscribers: _Optional[int] = ..., browsers: _Optional[_Iterable[_Union[_segment_pb2.BrowserReach, _Mapping]]] = ..., exact: _Optional[bool] = ..., sample_fraction: _Optional[float] = ..., margin_of_error_pct: _Optional[float] = ...) -> None: ...

class MatchProfileRequest(_message.Message):
    __slots__ = ("audience", "profile_id", "subscriber_id")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    audience: _segment_pb2.AudienceSelector
    profile_id: str
    subscriber_id: str
    def __init__(self, audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., profile_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class MatchProfileResponse(_message.Message):
    __slots__ = ("matches", "reachable_subscriber_ids")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    matches: bool
    reachable_subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, matches: _Optional[bool] = ..., reachable_subscriber_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ImportedSubscriber(_message.Message):
    __slots__ = ("row", "subscriber", "create_time")
    ROW_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    row: int
    subscriber: RegisterSubscriberRequest
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, row: _Optional[int] = ..., subscriber: _Optional[_Union[RegisterSubscriberRequest, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ImportSubscribersRequest(_message.Message):
    __slots__ = ("subscribers",)
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[ImportedSubscriber]
    def __init__(self, subscribers: _Optional[_Iterable[_Union[ImportedSubscriber, _Mapping]]] = ...) -> None: ...

class ImportSubscribersResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ImportResult
    def __init__(self, result: _Optional[_Union[ImportResult, _Mapping]] = ...) -> None: ...

class ImportedProfile(_message.Message):
    __slots__ = ("row", "update")
    ROW_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    row: int
    update: _profile_pb2.ProfileUpdate
    def __init__(self, row: _Optional[int] = ..., update: _Optional[_Union[_profile_pb2.ProfileUpdate, _Mapping]] = ...) -> None: ...

class ImportProfilesRequest(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[ImportedProfile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[ImportedProfile, _Mapping]]] = ...) -> None: ...

class ImportProfilesResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ImportResult
    def __init__(self, result: _Optional[_Union[ImportResult, _Mapping]] = ...) -> None: ...

class ImportedEvent(_message.Message):
    __slots__ = ("row", "event")
    ROW_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    row: int
    event: _profile_pb2.Event
    def __init__(self, row: _Optional[int] = ..., event: _Optional[_Union[_profile_pb2.Event, _Mapping]] = ...) -> None: ...

class ImportEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ImportedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[ImportedEvent, _Mapping]]] = ...) -> None: ...

class ImportEventsResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ImportResult
    def __init__(self, result: _Optional[_Union[ImportResult, _Mapping]] = ...) -> None: ...

class ImportResult(_message.Message):
    __slots__ = ("stored", "unchanged", "rejected")
    STORED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    unchanged: int
    rejected: _containers.RepeatedCompositeFieldContainer[RowRejection]
    def __init__(self, stored: _Optional[int] = ..., unchanged: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RowRejection, _Mapping]]] = ...) -> None: ...

class RowRejection(_message.Message):
    __slots__ = ("row", "reason", "field", "message")
    ROW_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    row: int
    reason: str
    field: str
    message: str
    def __init__(self, row: _Optional[int] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ExportAudienceRequest(_message.Message):
    __slots__ = ("audience", "kind", "include_unsubscribed")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    audience: _segment_pb2.AudienceSelector
    kind: ExportKind
    include_unsubscribed: bool
    def __init__(self, audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., kind: _Optional[_Union[ExportKind, str]] = ..., include_unsubscribed: _Optional[bool] = ...) -> None: ...

class ExportAudienceResponse(_message.Message):
    __slots__ = ("subscribers", "profiles")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[_subscriber_pb2.Subscriber]
    profiles: _containers.RepeatedCompositeFieldContainer[_profile_pb2.Profile]
    def __init__(self, subscribers: _Optional[_Iterable[_Union[_subscriber_pb2.Subscriber, _Mapping]]] = ..., profiles: _Optional[_Iterable[_Union[_profile_pb2.Profile, _Mapping]]] = ...) -> None: ...
