from clarion.campaign.v1 import campaign_pb2 as _campaign_pb2
from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import segment_pb2 as _segment_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExplainRecipientRequest(_message.Message):
    __slots__ = ("campaign_id", "run_id", "subscriber_id", "profile_id")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    run_id: str
    subscriber_id: str
    profile_id: str
    def __init__(self, campaign_id: _Optional[str] = ..., run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., profile_id: _Optional[str] = ...) -> None: ...

class ExplainRecipientResponse(_message.Message):
    __slots__ = ("explanations",)
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    explanations: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.RecipientExplanation]
    def __init__(self, explanations: _Optional[_Iterable[_Union[_campaign_pb2.RecipientExplanation, _Mapping]]] = ...) -> None: ...

class PreviewCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class PreviewCampaignResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: _campaign_pb2.DeliveryPlan
    def __init__(self, plan: _Optional[_Union[_campaign_pb2.DeliveryPlan, _Mapping]] = ...) -> None: ...

class CreateCampaignRequest(_message.Message):
    __slots__ = ("name", "notification", "ttl_seconds", "urgency", "request_id", "audience", "schedule", "trigger", "timing", "personalization", "utm", "topic", "labels", "policy", "variants", "variant_test", "conversion_goal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    PERSONALIZATION_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_TEST_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_GOAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    notification: _common_pb2.Notification
    ttl_seconds: int
    urgency: _common_pb2.Urgency
    request_id: str
    audience: _segment_pb2.AudienceSelector
    schedule: _campaign_pb2.Schedule
    trigger: _campaign_pb2.Trigger
    timing: _campaign_pb2.SendTiming
    personalization: _campaign_pb2.Personalization
    utm: _campaign_pb2.UtmParameters
    topic: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    policy: _campaign_pb2.CampaignPolicy
    variants: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.Variant]
    variant_test: _campaign_pb2.VariantTest
    conversion_goal: _common_pb2.ConversionGoal
    def __init__(self, name: _Optional[str] = ..., notification: _Optional[_Union[_common_pb2.Notification, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., urgency: _Optional[_Union[_common_pb2.Urgency, str]] = ..., request_id: _Optional[str] = ..., audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., schedule: _Optional[_Union[_campaign_pb2.Schedule, _Mapping]] = ..., trigger: _Optional[_Union[_campaign_pb2.Trigger, _Mapping]] = ..., timing: _Optional[_Union[_campaign_pb2.SendTiming, _Mapping]] = ..., personalization: _Optional[_Union[_campaign_pb2.Personalization, _Mapping]] = ..., utm: _Optional[_Union[_campaign_pb2.UtmParameters, _Mapping]] = ..., topic: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[_campaign_pb2.CampaignPolicy, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[_campaign_pb2.Variant, _Mapping]]] = ..., variant_test: _Optional[_Union[_campaign_pb2.VariantTest, _Mapping]] = ..., conversion_goal: _Optional[_Union[_common_pb2.ConversionGoal, _Mapping]] = ...) -> None: ...

class CreateCampaignResponse(_message.Message):
    __slots__ = ("campaign", "warnings")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    warnings: _containers.RepeatedCompositeFieldContainer[CampaignWarning]
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[CampaignWarning, _Mapping]]] = ...) -> None: ...

class CampaignWarning(_message.Message):
    __slots__ = ("reason", "field", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    field: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "label")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    label: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "next_page_token")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.Campaign]
    next_page_token: str
    def __init__(self, campaigns: _Optional[_Iterable[_Union[_campaign_pb2.Campaign, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCampaignRequest(_message.Message):
    __slots__ = ("campaign", "update_mask")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateCampaignResponse(_message.Message):
    __slots__ = ("campaign", "warnings")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    warnings: _containers.RepeatedCompositeFieldContainer[CampaignWarning]
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[CampaignWarning, _Mapping]]] = ...) -> None: ...

class SendCampaignNowRequest(_message.Message):
    __slots__ = ("campaign_id", "request_id", "recipients")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    request_id: str
    recipients: Recipients
    def __init__(self, campaign_id: _Optional[str] = ..., request_id: _Optional[str] = ..., recipients: _Optional[_Union[Recipients, _Mapping]] = ...) -> None: ...

class SendNotificationRequest(_message.Message):
    __slots__ = ("notification", "ttl_seconds", "urgency", "recipients", "request_id", "personalization", "utm", "topic")
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONALIZATION_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    notification: _common_pb2.Notification
    ttl_seconds: int
    urgency: _common_pb2.Urgency
    recipients: Recipients
    request_id: str
    personalization: _campaign_pb2.Personalization
    utm: _campaign_pb2.UtmParameters
    topic: str
    def __init__(self, notification: _Optional[_Union[_common_pb2.Notification, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., urgency: _Optional[_Union[_common_pb2.Urgency, str]] = ..., recipients: _Optional[_Union[Recipients, _Mapping]] = ..., request_id: _Optional[str] = ..., personalization: _Optional[_Union[_campaign_pb2.Personalization, _Mapping]] = ..., utm: _Optional[_Union[_campaign_pb2.UtmParameters, _Mapping]] = ..., topic: _Optional[str] = ...) -> None: ...

class SendNotificationResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _campaign_pb2.Run
    def __init__(self, run: _Optional[_Union[_campaign_pb2.Run, _Mapping]] = ...) -> None: ...

class Recipients(_message.Message):
    __slots__ = ("profile_ids", "subscriber_ids")
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_IDS_FIELD_NUMBER: _ClassVar[int]
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    subscriber_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, profile_ids: _Optional[_Iterable[str]] = ..., subscriber_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SendCampaignNowResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _campaign_pb2.Run
    def __init__(self, run: _Optional[_Union[_campaign_pb2.Run, _Mapping]] = ...) -> None: ...

class SendTestCampaignRequest(_message.Message):
    __slots__ = ("campaign_id", "request_id", "variant_id")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    request_id: str
    variant_id: str
    def __init__(self, campaign_id: _Optional[str] = ..., request_id: _Optional[str] = ..., variant_id: _Optional[str] = ...) -> None: ...

class SendTestCampaignResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _campaign_pb2.Run
    def __init__(self, run: _Optional[_Union[_campaign_pb2.Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _campaign_pb2.Run
    def __init__(self, run: _Optional[_Union[_campaign_pb2.Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("campaign_id", "page_size", "page_token")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    page_size: int
    page_token: str
    def __init__(self, campaign_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_campaign_pb2.Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_campaign_pb2.Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _campaign_pb2.Run
    def __init__(self, run: _Optional[_Union[_campaign_pb2.Run, _Mapping]] = ...) -> None: ...

class GetRunRecipientRequest(_message.Message):
    __slots__ = ("run_id", "subscriber_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class GetRunRecipientResponse(_message.Message):
    __slots__ = ("recipient",)
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    recipient: _campaign_pb2.RunRecipient
    def __init__(self, recipient: _Optional[_Union[_campaign_pb2.RunRecipient, _Mapping]] = ...) -> None: ...

class PauseCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class PauseCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class ResumeCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class ResumeCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...

class CancelCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class CancelCampaignResponse(_message.Message):
    __slots__ = ("campaign",)
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    campaign: _campaign_pb2.Campaign
    def __init__(self, campaign: _Optional[_Union[_campaign_pb2.Campaign, _Mapping]] = ...) -> None: ...
