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
    __slots__ = ("campaign_id", "audience", "sent", "failed", "viewed", "clicked", "click_through_rate", "last_sent_time", "runs", "closed", "suppressed", "expired", "conversions", "conversion_rate", "revenue", "variants", "control_group", "control_group_conversions")
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
    def __init__(self, campaign_id: _Optional[str] = ..., audience: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., last_sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runs: _Optional[int] = ..., closed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., conversions: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., revenue: _Optional[float] = ..., variants: _Optional[_Iterable[_Union[VariantReport, _Mapping]]] = ..., control_group: _Optional[int] = ..., control_group_conversions: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("run_id", "campaign_id", "audience", "sent", "failed", "suppressed", "expired", "viewed", "clicked", "click_through_rate", "conversions", "conversion_rate", "revenue", "variants", "test")
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
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., audience: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ..., viewed: _Optional[int] = ..., clicked: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., conversions: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., revenue: _Optional[float] = ..., variants: _Optional[_Iterable[_Union[VariantReport, _Mapping]]] = ..., test: _Optional[bool] = ...) -> None: ...
