import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryOutcome(_message.Message):
    __slots__ = ("run_id", "campaign_id", "subscriber_id", "status", "reason", "browser", "occur_time", "test", "variant", "profile_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    subscriber_id: str
    status: _common_pb2.DeliveryStatus
    reason: _common_pb2.DeliveryReason
    browser: _common_pb2.Browser
    occur_time: _timestamp_pb2.Timestamp
    test: bool
    variant: str
    profile_id: str
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DeliveryStatus, str]] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., test: _Optional[bool] = ..., variant: _Optional[str] = ..., profile_id: _Optional[str] = ...) -> None: ...

class EngagementEvent(_message.Message):
    __slots__ = ("run_id", "campaign_id", "subscriber_id", "kind", "button", "occur_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUTTON_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    subscriber_id: str
    kind: _common_pb2.EngagementKind
    button: str
    occur_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.EngagementKind, str]] = ..., button: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CampaignReport(_message.Message):
    __slots__ = ("campaign_id", "audience", "sent", "failed", "viewed", "clicked", "click_through_rate", "last_sent_time", "runs", "closed", "suppressed", "expired", "conversions", "conversion_rate", "revenue", "variants", "control_group", "control_group_conversions", "failed_by_reason", "suppressed_by_reason", "expired_by_reason", "clicked_by_button", "browsers", "timeline", "sent_views_not_measured", "view_rate", "unsubscribes_after_push", "lift")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    CLICKED_BY_BUTTON_FIELD_NUMBER: _ClassVar[int]
    BROWSERS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    SENT_VIEWS_NOT_MEASURED_FIELD_NUMBER: _ClassVar[int]
    VIEW_RATE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBES_AFTER_PUSH_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    audience: int
    sent: int
    failed: int
    viewed: int
    clicked: int
    click_through_rate: float
    last_sent_time: _timestamp_pb2.Timestamp
    runs: int
    closed: int
    suppressed: int
    expired: int
    conversions: int
    conversion_rate: float
    revenue: float
    variants: _containers.RepeatedCompositeFieldContainer[VariantReport]
    control_group: int
    control_group_conversions: int
    failed_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    suppressed_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    expired_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    clicked_by_button: _containers.RepeatedCompositeFieldContainer[ButtonClicks]
    browsers: _containers.RepeatedCompositeFieldContainer[BrowserReport]
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineHour]
    sent_views_not_measured: int
    view_rate: float
    unsubscribes_after_push: int
    lift: Lift
    def __init__(self, campaign_id: _Optional[str] = ..., audience: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., last_sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runs: _Optional[int] = ..., closed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., conversions: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., revenue: _Optional[float] = ..., variants: _Optional[_Iterable[_Union[VariantReport, _Mapping]]] = ..., control_group: _Optional[int] = ..., control_group_conversions: _Optional[int] = ..., failed_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., suppressed_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., expired_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., clicked_by_button: _Optional[_Iterable[_Union[ButtonClicks, _Mapping]]] = ..., browsers: _Optional[_Iterable[_Union[BrowserReport, _Mapping]]] = ..., timeline: _Optional[_Iterable[_Union[TimelineHour, _Mapping]]] = ..., sent_views_not_measured: _Optional[int] = ..., view_rate: _Optional[float] = ..., unsubscribes_after_push: _Optional[int] = ..., lift: _Optional[_Union[Lift, _Mapping]] = ...) -> None: ...

class VariantReport(_message.Message):
    __slots__ = ("variant_id", "sent", "viewed", "clicked", "click_through_rate", "conversions", "conversion_rate", "revenue")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    sent: int
    viewed: int
    clicked: int
    click_through_rate: float
    conversions: int
    conversion_rate: float
    revenue: float
    def __init__(self, variant_id: _Optional[str] = ..., sent: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., conversions: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., revenue: _Optional[float] = ...) -> None: ...

class RunReport(_message.Message):
    __slots__ = ("run_id", "campaign_id", "audience", "sent", "failed", "suppressed", "expired", "viewed", "clicked", "click_through_rate", "conversions", "conversion_rate", "revenue", "variants", "test", "failed_by_reason", "suppressed_by_reason", "expired_by_reason", "clicked_by_button", "browsers", "timeline", "sent_views_not_measured", "view_rate", "unsubscribes_after_push", "lift", "last_sent_time", "closed", "control_group", "control_group_conversions")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    FAILED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    CLICKED_BY_BUTTON_FIELD_NUMBER: _ClassVar[int]
    BROWSERS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    SENT_VIEWS_NOT_MEASURED_FIELD_NUMBER: _ClassVar[int]
    VIEW_RATE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBES_AFTER_PUSH_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    LAST_SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    viewed: int
    clicked: int
    click_through_rate: float
    conversions: int
    conversion_rate: float
    revenue: float
    variants: _containers.RepeatedCompositeFieldContainer[VariantReport]
    test: bool
    failed_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    suppressed_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    expired_by_reason: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    clicked_by_button: _containers.RepeatedCompositeFieldContainer[ButtonClicks]
    browsers: _containers.RepeatedCompositeFieldContainer[BrowserReport]
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineHour]
    sent_views_not_measured: int
    view_rate: float
    unsubscribes_after_push: int
    lift: Lift
    last_sent_time: _timestamp_pb2.Timestamp
    closed: int
    control_group: int
    control_group_conversions: int
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., audience: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., conversions: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., revenue: _Optional[float] = ..., variants: _Optional[_Iterable[_Union[VariantReport, _Mapping]]] = ..., test: _Optional[bool] = ..., failed_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., suppressed_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., expired_by_reason: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., clicked_by_button: _Optional[_Iterable[_Union[ButtonClicks, _Mapping]]] = ..., browsers: _Optional[_Iterable[_Union[BrowserReport, _Mapping]]] = ..., timeline: _Optional[_Iterable[_Union[TimelineHour, _Mapping]]] = ..., sent_views_not_measured: _Optional[int] = ..., view_rate: _Optional[float] = ..., unsubscribes_after_push: _Optional[int] = ..., lift: _Optional[_Union[Lift, _Mapping]] = ..., last_sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed: _Optional[int] = ..., control_group: _Optional[int] = ..., control_group_conversions: _Optional[int] = ...) -> None: ...

class ReasonCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.DeliveryReason
    count: int
    def __init__(self, reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., count: _Optional[int] = ...) -> None: ...

class ButtonClicks(_message.Message):
    __slots__ = ("button", "clicked")
    BUTTON_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    button: str
    clicked: int
    def __init__(self, button: _Optional[str] = ..., clicked: _Optional[int] = ...) -> None: ...

class BrowserReport(_message.Message):
    __slots__ = ("browser", "audience", "sent", "failed", "suppressed", "expired", "viewed", "clicked", "closed", "click_through_rate", "views_measured")
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    VIEWS_MEASURED_FIELD_NUMBER: _ClassVar[int]
    browser: _common_pb2.Browser
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    viewed: int
    clicked: int
    closed: int
    click_through_rate: float
    views_measured: bool
    def __init__(self, browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., audience: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., closed: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., views_measured: _Optional[bool] = ...) -> None: ...

class TimelineHour(_message.Message):
    __slots__ = ("hour_start_time", "sent", "viewed", "clicked", "converted")
    HOUR_START_TIME_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    hour_start_time: _timestamp_pb2.Timestamp
    sent: int
    viewed: int
    clicked: int
    converted: int
    def __init__(self, hour_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., converted: _Optional[int] = ...) -> None: ...

class Lift(_message.Message):
    __slots__ = ("sent_recipients", "sent_converted", "control_recipients", "control_converted", "sent_conversion_rate", "control_conversion_rate", "difference", "difference_low", "difference_high", "significant")
    SENT_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SENT_CONVERTED_FIELD_NUMBER: _ClassVar[int]
    CONTROL_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_CONVERTED_FIELD_NUMBER: _ClassVar[int]
    SENT_CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_LOW_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_HIGH_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    sent_recipients: int
    sent_converted: int
    control_recipients: int
    control_converted: int
    sent_conversion_rate: float
    control_conversion_rate: float
    difference: float
    difference_low: float
    difference_high: float
    significant: bool
    def __init__(self, sent_recipients: _Optional[int] = ..., sent_converted: _Optional[int] = ..., control_recipients: _Optional[int] = ..., control_converted: _Optional[int] = ..., sent_conversion_rate: _Optional[float] = ..., control_conversion_rate: _Optional[float] = ..., difference: _Optional[float] = ..., difference_low: _Optional[float] = ..., difference_high: _Optional[float] = ..., significant: _Optional[bool] = ...) -> None: ...

class RecipientActivity(_message.Message):
    __slots__ = ("run_id", "subscriber_id", "status", "reason", "viewed_time", "clicked_time", "clicked_button", "closed_time", "conversions", "revenue", "converted_time", "variant", "control_group")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VIEWED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLICKED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLICKED_BUTTON_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TIME_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_TIME_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    status: _common_pb2.DeliveryStatus
    reason: _common_pb2.DeliveryReason
    viewed_time: _timestamp_pb2.Timestamp
    clicked_time: _timestamp_pb2.Timestamp
    clicked_button: str
    closed_time: _timestamp_pb2.Timestamp
    conversions: int
    revenue: float
    converted_time: _timestamp_pb2.Timestamp
    variant: str
    control_group: bool
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DeliveryStatus, str]] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., viewed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clicked_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clicked_button: _Optional[str] = ..., closed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conversions: _Optional[int] = ..., revenue: _Optional[float] = ..., converted_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., variant: _Optional[str] = ..., control_group: _Optional[bool] = ...) -> None: ...
