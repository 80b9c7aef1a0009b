import datetime

from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Browser(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BROWSER_UNSPECIFIED: _ClassVar[Browser]
    BROWSER_CHROME: _ClassVar[Browser]
    BROWSER_FIREFOX: _ClassVar[Browser]
    BROWSER_EDGE: _ClassVar[Browser]
    BROWSER_OPERA: _ClassVar[Browser]
    BROWSER_SAFARI: _ClassVar[Browser]
    BROWSER_OTHER: _ClassVar[Browser]
    BROWSER_SAFARI_LEGACY: _ClassVar[Browser]

class Urgency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    URGENCY_UNSPECIFIED: _ClassVar[Urgency]
    URGENCY_VERY_LOW: _ClassVar[Urgency]
    URGENCY_LOW: _ClassVar[Urgency]
    URGENCY_NORMAL: _ClassVar[Urgency]
    URGENCY_HIGH: _ClassVar[Urgency]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SENT: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SUPPRESSED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_EXPIRED: _ClassVar[DeliveryStatus]

class EngagementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENGAGEMENT_KIND_UNSPECIFIED: _ClassVar[EngagementKind]
    ENGAGEMENT_KIND_VIEWED: _ClassVar[EngagementKind]
    ENGAGEMENT_KIND_CLICKED: _ClassVar[EngagementKind]
    ENGAGEMENT_KIND_CLOSED: _ClassVar[EngagementKind]

class DeliveryReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_REASON_UNSPECIFIED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_404: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_410: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PAYLOAD_TOO_LARGE: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_429: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_5XX: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_AUTH: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PUSH_SERVICE_4XX: _ClassVar[DeliveryReason]
    DELIVERY_REASON_TIMEOUT: _ClassVar[DeliveryReason]
    DELIVERY_REASON_CONNECTION_ERROR: _ClassVar[DeliveryReason]
    DELIVERY_REASON_ENDPOINT_REFUSED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_ENCRYPTION_ERROR: _ClassVar[DeliveryReason]
    DELIVERY_REASON_NO_VAPID_CREDENTIALS: _ClassVar[DeliveryReason]
    DELIVERY_REASON_UNSUBSCRIBED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_FREQUENCY_CAP: _ClassVar[DeliveryReason]
    DELIVERY_REASON_DND: _ClassVar[DeliveryReason]
    DELIVERY_REASON_CUT_OFF: _ClassVar[DeliveryReason]
    DELIVERY_REASON_CONTROL_GROUP: _ClassVar[DeliveryReason]
    DELIVERY_REASON_CANCELLED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_EXPIRED_TTL: _ClassVar[DeliveryReason]
    DELIVERY_REASON_APNS_UNREGISTERED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_LOCAL_TIME_PASSED: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PERSONALIZATION_MISSING: _ClassVar[DeliveryReason]
    DELIVERY_REASON_PERSONALIZATION_INVALID: _ClassVar[DeliveryReason]
    DELIVERY_REASON_APNS_BAD_DEVICE_TOKEN: _ClassVar[DeliveryReason]
    DELIVERY_REASON_APNS_TOKEN_NOT_FOR_TOPIC: _ClassVar[DeliveryReason]
    DELIVERY_REASON_APNS_NO_CREDENTIALS: _ClassVar[DeliveryReason]
BROWSER_UNSPECIFIED: Browser
BROWSER_CHROME: Browser
BROWSER_FIREFOX: Browser
BROWSER_EDGE: Browser
BROWSER_OPERA: Browser
BROWSER_SAFARI: Browser
BROWSER_OTHER: Browser
BROWSER_SAFARI_LEGACY: Browser
URGENCY_UNSPECIFIED: Urgency
URGENCY_VERY_LOW: Urgency
URGENCY_LOW: Urgency
URGENCY_NORMAL: Urgency
URGENCY_HIGH: Urgency
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_SENT: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus
DELIVERY_STATUS_SUPPRESSED: DeliveryStatus
DELIVERY_STATUS_EXPIRED: DeliveryStatus
ENGAGEMENT_KIND_UNSPECIFIED: EngagementKind
ENGAGEMENT_KIND_VIEWED: EngagementKind
ENGAGEMENT_KIND_CLICKED: EngagementKind
ENGAGEMENT_KIND_CLOSED: EngagementKind
DELIVERY_REASON_UNSPECIFIED: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_404: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_410: DeliveryReason
DELIVERY_REASON_PAYLOAD_TOO_LARGE: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_429: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_5XX: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_AUTH: DeliveryReason
DELIVERY_REASON_PUSH_SERVICE_4XX: DeliveryReason
DELIVERY_REASON_TIMEOUT: DeliveryReason
DELIVERY_REASON_CONNECTION_ERROR: DeliveryReason
DELIVERY_REASON_ENDPOINT_REFUSED: DeliveryReason
DELIVERY_REASON_ENCRYPTION_ERROR: DeliveryReason
DELIVERY_REASON_NO_VAPID_CREDENTIALS: DeliveryReason
DELIVERY_REASON_UNSUBSCRIBED: DeliveryReason
DELIVERY_REASON_FREQUENCY_CAP: DeliveryReason
DELIVERY_REASON_DND: DeliveryReason
DELIVERY_REASON_CUT_OFF: DeliveryReason
DELIVERY_REASON_CONTROL_GROUP: DeliveryReason
DELIVERY_REASON_CANCELLED: DeliveryReason
DELIVERY_REASON_EXPIRED_TTL: DeliveryReason
DELIVERY_REASON_APNS_UNREGISTERED: DeliveryReason
DELIVERY_REASON_LOCAL_TIME_PASSED: DeliveryReason
DELIVERY_REASON_PERSONALIZATION_MISSING: DeliveryReason
DELIVERY_REASON_PERSONALIZATION_INVALID: DeliveryReason
DELIVERY_REASON_APNS_BAD_DEVICE_TOKEN: DeliveryReason
DELIVERY_REASON_APNS_TOKEN_NOT_FOR_TOPIC: DeliveryReason
DELIVERY_REASON_APNS_NO_CREDENTIALS: DeliveryReason

class ConversionGoal(_message.Message):
    __slots__ = ("event_name", "window_seconds", "revenue_property")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_PROPERTY_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    window_seconds: int
    revenue_property: str
    def __init__(self, event_name: _Optional[str] = ..., window_seconds: _Optional[int] = ..., revenue_property: _Optional[str] = ...) -> None: ...

class RunDescription(_message.Message):
    __slots__ = ("notification_title", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "variant_titles")
    NOTIFICATION_TITLE_FIELD_NUMBER: _ClassVar[int]
    UTM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UTM_MEDIUM_FIELD_NUMBER: _ClassVar[int]
    UTM_CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    UTM_CONTENT_FIELD_NUMBER: _ClassVar[int]
    UTM_TERM_FIELD_NUMBER: _ClassVar[int]
    VARIANT_TITLES_FIELD_NUMBER: _ClassVar[int]
    notification_title: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str
    utm_term: str
    variant_titles: _containers.RepeatedCompositeFieldContainer[VariantTitle]
    def __init__(self, notification_title: _Optional[str] = ..., utm_source: _Optional[str] = ..., utm_medium: _Optional[str] = ..., utm_campaign: _Optional[str] = ..., utm_content: _Optional[str] = ..., utm_term: _Optional[str] = ..., variant_titles: _Optional[_Iterable[_Union[VariantTitle, _Mapping]]] = ...) -> None: ...

class VariantTitle(_message.Message):
    __slots__ = ("variant_id", "notification_title")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_TITLE_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    notification_title: str
    def __init__(self, variant_id: _Optional[str] = ..., notification_title: _Optional[str] = ...) -> None: ...

class PushSubscription(_message.Message):
    __slots__ = ("endpoint", "p256dh", "auth")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    P256DH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    p256dh: bytes
    auth: bytes
    def __init__(self, endpoint: _Optional[str] = ..., p256dh: _Optional[bytes] = ..., auth: _Optional[bytes] = ...) -> None: ...

class ApnsDevice(_message.Message):
    __slots__ = ("device_token", "topic")
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    device_token: str
    topic: str
    def __init__(self, device_token: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class PushTarget(_message.Message):
    __slots__ = ("web_push", "apns")
    WEB_PUSH_FIELD_NUMBER: _ClassVar[int]
    APNS_FIELD_NUMBER: _ClassVar[int]
    web_push: PushSubscription
    apns: ApnsDevice
    def __init__(self, web_push: _Optional[_Union[PushSubscription, _Mapping]] = ..., apns: _Optional[_Union[ApnsDevice, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("title", "body", "icon_url", "image_url", "target_url", "badge_url", "actions", "require_interaction", "silent", "tag", "renotify")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ICON_URL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    TARGET_URL_FIELD_NUMBER: _ClassVar[int]
    BADGE_URL_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_INTERACTION_FIELD_NUMBER: _ClassVar[int]
    SILENT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    RENOTIFY_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    icon_url: str
    image_url: str
    target_url: str
    badge_url: str
    actions: _containers.RepeatedCompositeFieldContainer[NotificationAction]
    require_interaction: bool
    silent: bool
    tag: str
    renotify: bool
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., icon_url: _Optional[str] = ..., image_url: _Optional[str] = ..., target_url: _Optional[str] = ..., badge_url: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[NotificationAction, _Mapping]]] = ..., require_interaction: _Optional[bool] = ..., silent: _Optional[bool] = ..., tag: _Optional[str] = ..., renotify: _Optional[bool] = ...) -> None: ...

class NotificationAction(_message.Message):
    __slots__ = ("title", "url", "icon_url")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ICON_URL_FIELD_NUMBER: _ClassVar[int]
    title: str
    url: str
    icon_url: str
    def __init__(self, title: _Optional[str] = ..., url: _Optional[str] = ..., icon_url: _Optional[str] = ...) -> None: ...

class PushPayload(_message.Message):
    __slots__ = ("title", "body", "icon", "image", "url", "campaign_id", "run_id", "subscriber_id", "engagement_token", "badge", "actions", "require_interaction", "silent", "tag", "renotify", "test", "site_id", "version")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BADGE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_INTERACTION_FIELD_NUMBER: _ClassVar[int]
    SILENT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    RENOTIFY_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    icon: str
    image: str
    url: str
    campaign_id: str
    run_id: str
    subscriber_id: str
    engagement_token: str
    badge: str
    actions: _containers.RepeatedCompositeFieldContainer[PushAction]
    require_interaction: bool
    silent: bool
    tag: str
    renotify: bool
    test: bool
    site_id: str
    version: int
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., icon: _Optional[str] = ..., image: _Optional[str] = ..., url: _Optional[str] = ..., campaign_id: _Optional[str] = ..., run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., engagement_token: _Optional[str] = ..., badge: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[PushAction, _Mapping]]] = ..., require_interaction: _Optional[bool] = ..., silent: _Optional[bool] = ..., tag: _Optional[str] = ..., renotify: _Optional[bool] = ..., test: _Optional[bool] = ..., site_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PushAction(_message.Message):
    __slots__ = ("action", "title", "url", "icon")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    action: str
    title: str
    url: str
    icon: str
    def __init__(self, action: _Optional[str] = ..., title: _Optional[str] = ..., url: _Optional[str] = ..., icon: _Optional[str] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("attempt_time", "http_status", "reason", "push_service")
    ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PUSH_SERVICE_FIELD_NUMBER: _ClassVar[int]
    attempt_time: _timestamp_pb2.Timestamp
    http_status: int
    reason: DeliveryReason
    push_service: str
    def __init__(self, attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., http_status: _Optional[int] = ..., reason: _Optional[_Union[DeliveryReason, str]] = ..., push_service: _Optional[str] = ...) -> None: ...

class HeldPushService(_message.Message):
    __slots__ = ("push_service", "reason", "http_status", "detail", "since", "next_probe_time")
    PUSH_SERVICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PROBE_TIME_FIELD_NUMBER: _ClassVar[int]
    push_service: str
    reason: DeliveryReason
    http_status: int
    detail: str
    since: _timestamp_pb2.Timestamp
    next_probe_time: _timestamp_pb2.Timestamp
    def __init__(self, push_service: _Optional[str] = ..., reason: _Optional[_Union[DeliveryReason, str]] = ..., http_status: _Optional[int] = ..., detail: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_probe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
