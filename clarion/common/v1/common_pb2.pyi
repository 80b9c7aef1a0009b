from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

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
BROWSER_UNSPECIFIED: Browser
BROWSER_CHROME: Browser
BROWSER_FIREFOX: Browser
BROWSER_EDGE: Browser
BROWSER_OPERA: Browser
BROWSER_SAFARI: Browser
BROWSER_OTHER: Browser
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

class PushSubscription(_message.Message):
    __slots__ = ("endpoint", "p256dh", "auth")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    P256DH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    p256dh: bytes
    auth: bytes
    def __init__(self, endpoint: _Optional[str] = ..., p256dh: _Optional[bytes] = ..., auth: _Optional[bytes] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("title", "body", "icon_url", "image_url", "target_url")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ICON_URL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    TARGET_URL_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    icon_url: str
    image_url: str
    target_url: str
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., icon_url: _Optional[str] = ..., image_url: _Optional[str] = ..., target_url: _Optional[str] = ...) -> None: ...
