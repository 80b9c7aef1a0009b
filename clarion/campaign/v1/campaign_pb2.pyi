import datetime

from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.segment.v1 import segment_pb2 as _segment_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WinnerMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINNER_METRIC_UNSPECIFIED: _ClassVar[WinnerMetric]
    WINNER_METRIC_CLICK_THROUGH_RATE: _ClassVar[WinnerMetric]
    WINNER_METRIC_CONVERSION_RATE: _ClassVar[WinnerMetric]

class RunPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_PHASE_UNSPECIFIED: _ClassVar[RunPhase]
    RUN_PHASE_VARIANT_TEST: _ClassVar[RunPhase]
    RUN_PHASE_VARIANT_REST: _ClassVar[RunPhase]

class MissingValueAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSING_VALUE_ACTION_UNSPECIFIED: _ClassVar[MissingValueAction]
    MISSING_VALUE_ACTION_USE_TEXT: _ClassVar[MissingValueAction]
    MISSING_VALUE_ACTION_SUPPRESS: _ClassVar[MissingValueAction]

class QuietHoursAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUIET_HOURS_ACTION_UNSPECIFIED: _ClassVar[QuietHoursAction]
    QUIET_HOURS_ACTION_DISCARD: _ClassVar[QuietHoursAction]
    QUIET_HOURS_ACTION_DELAY: _ClassVar[QuietHoursAction]

class CampaignState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_STATE_UNSPECIFIED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_DRAFT: _ClassVar[CampaignState]
    CAMPAIGN_STATE_SCHEDULED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_PAUSED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_COMPLETED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_CANCELLED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_RUNNING: _ClassVar[CampaignState]

class MissedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSED_REASON_UNSPECIFIED: _ClassVar[MissedReason]
    MISSED_REASON_PAUSED: _ClassVar[MissedReason]
    MISSED_REASON_SUPERSEDED: _ClassVar[MissedReason]
    MISSED_REASON_CUT_OFF: _ClassVar[MissedReason]
    MISSED_REASON_ENDED: _ClassVar[MissedReason]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PREPARING: _ClassVar[RunState]
    RUN_STATE_SENDING: _ClassVar[RunState]
    RUN_STATE_DONE: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]

class RunWarning(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_WARNING_UNSPECIFIED: _ClassVar[RunWarning]
    RUN_WARNING_EMPTY_AUDIENCE: _ClassVar[RunWarning]

class RecipientStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECIPIENT_STATUS_UNSPECIFIED: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_PENDING: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_SENT: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_FAILED: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_SUPPRESSED: _ClassVar[RecipientStatus]
    RECIPIENT_STATUS_EXPIRED: _ClassVar[RecipientStatus]

class NotTargetedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_TARGETED_REASON_UNSPECIFIED: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_NOT_IN_SEGMENT: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_UNSUBSCRIBED: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_JOINED_AFTER_RUN: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_UNREACHABLE: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_TEST_SEND_ONLY: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_UNKNOWN_SUBSCRIBER: _ClassVar[NotTargetedReason]
    NOT_TARGETED_REASON_NOT_IN_SAMPLE: _ClassVar[NotTargetedReason]
WINNER_METRIC_UNSPECIFIED: WinnerMetric
WINNER_METRIC_CLICK_THROUGH_RATE: WinnerMetric
WINNER_METRIC_CONVERSION_RATE: WinnerMetric
RUN_PHASE_UNSPECIFIED: RunPhase
RUN_PHASE_VARIANT_TEST: RunPhase
RUN_PHASE_VARIANT_REST: RunPhase
MISSING_VALUE_ACTION_UNSPECIFIED: MissingValueAction
MISSING_VALUE_ACTION_USE_TEXT: MissingValueAction
MISSING_VALUE_ACTION_SUPPRESS: MissingValueAction
QUIET_HOURS_ACTION_UNSPECIFIED: QuietHoursAction
QUIET_HOURS_ACTION_DISCARD: QuietHoursAction
QUIET_HOURS_ACTION_DELAY: QuietHoursAction
CAMPAIGN_STATE_UNSPECIFIED: CampaignState
CAMPAIGN_STATE_DRAFT: CampaignState
CAMPAIGN_STATE_SCHEDULED: CampaignState
CAMPAIGN_STATE_PAUSED: CampaignState
CAMPAIGN_STATE_COMPLETED: CampaignState
CAMPAIGN_STATE_CANCELLED: CampaignState
CAMPAIGN_STATE_RUNNING: CampaignState
MISSED_REASON_UNSPECIFIED: MissedReason
MISSED_REASON_PAUSED: MissedReason
MISSED_REASON_SUPERSEDED: MissedReason
MISSED_REASON_CUT_OFF: MissedReason
MISSED_REASON_ENDED: MissedReason
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PREPARING: RunState
RUN_STATE_SENDING: RunState
RUN_STATE_DONE: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_WARNING_UNSPECIFIED: RunWarning
RUN_WARNING_EMPTY_AUDIENCE: RunWarning
RECIPIENT_STATUS_UNSPECIFIED: RecipientStatus
RECIPIENT_STATUS_PENDING: RecipientStatus
RECIPIENT_STATUS_SENT: RecipientStatus
RECIPIENT_STATUS_FAILED: RecipientStatus
RECIPIENT_STATUS_SUPPRESSED: RecipientStatus
RECIPIENT_STATUS_EXPIRED: RecipientStatus
NOT_TARGETED_REASON_UNSPECIFIED: NotTargetedReason
NOT_TARGETED_REASON_NOT_IN_SEGMENT: NotTargetedReason
NOT_TARGETED_REASON_UNSUBSCRIBED: NotTargetedReason
NOT_TARGETED_REASON_JOINED_AFTER_RUN: NotTargetedReason
NOT_TARGETED_REASON_UNREACHABLE: NotTargetedReason
NOT_TARGETED_REASON_TEST_SEND_ONLY: NotTargetedReason
NOT_TARGETED_REASON_UNKNOWN_SUBSCRIBER: NotTargetedReason
NOT_TARGETED_REASON_NOT_IN_SAMPLE: NotTargetedReason

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "name", "notification", "ttl_seconds", "urgency", "create_time", "update_time", "audience", "schedule", "state", "next_run_time", "missed_occurrences", "trigger", "timing", "personalization", "utm", "topic", "labels", "policy", "variants", "variant_test", "conversion_goal")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    MISSED_OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
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
    campaign_id: str
    name: str
    notification: _common_pb2.Notification
    ttl_seconds: int
    urgency: _common_pb2.Urgency
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    audience: _segment_pb2.AudienceSelector
    schedule: Schedule
    state: CampaignState
    next_run_time: _timestamp_pb2.Timestamp
    missed_occurrences: _containers.RepeatedCompositeFieldContainer[MissedOccurrence]
    trigger: Trigger
    timing: SendTiming
    personalization: Personalization
    utm: UtmParameters
    topic: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    policy: CampaignPolicy
    variants: _containers.RepeatedCompositeFieldContainer[Variant]
    variant_test: VariantTest
    conversion_goal: _common_pb2.ConversionGoal
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., notification: _Optional[_Union[_common_pb2.Notification, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., urgency: _Optional[_Union[_common_pb2.Urgency, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience: _Optional[_Union[_segment_pb2.AudienceSelector, _Mapping]] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., state: _Optional[_Union[CampaignState, str]] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., missed_occurrences: _Optional[_Iterable[_Union[MissedOccurrence, _Mapping]]] = ..., trigger: _Optional[_Union[Trigger, _Mapping]] = ..., timing: _Optional[_Union[SendTiming, _Mapping]] = ..., personalization: _Optional[_Union[Personalization, _Mapping]] = ..., utm: _Optional[_Union[UtmParameters, _Mapping]] = ..., topic: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[CampaignPolicy, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ..., variant_test: _Optional[_Union[VariantTest, _Mapping]] = ..., conversion_goal: _Optional[_Union[_common_pb2.ConversionGoal, _Mapping]] = ...) -> None: ...

class Variant(_message.Message):
    __slots__ = ("variant_id", "notification", "split_percent")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    notification: _common_pb2.Notification
    split_percent: int
    def __init__(self, variant_id: _Optional[str] = ..., notification: _Optional[_Union[_common_pb2.Notification, _Mapping]] = ..., split_percent: _Optional[int] = ...) -> None: ...

class VariantTest(_message.Message):
    __slots__ = ("test_percent", "wait_seconds", "metric")
    TEST_PERCENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    test_percent: int
    wait_seconds: int
    metric: WinnerMetric
    def __init__(self, test_percent: _Optional[int] = ..., wait_seconds: _Optional[int] = ..., metric: _Optional[_Union[WinnerMetric, str]] = ...) -> None: ...

class VariantDecision(_message.Message):
    __slots__ = ("metric", "winner_variant_id", "results", "z_score", "significant", "decide_time")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    WINNER_VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    metric: WinnerMetric
    winner_variant_id: str
    results: _containers.RepeatedCompositeFieldContainer[VariantResult]
    z_score: float
    significant: bool
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, metric: _Optional[_Union[WinnerMetric, str]] = ..., winner_variant_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[VariantResult, _Mapping]]] = ..., z_score: _Optional[float] = ..., significant: _Optional[bool] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VariantResult(_message.Message):
    __slots__ = ("variant_id", "sent", "successes", "rate")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    sent: int
    successes: int
    rate: float
    def __init__(self, variant_id: _Optional[str] = ..., sent: _Optional[int] = ..., successes: _Optional[int] = ..., rate: _Optional[float] = ...) -> None: ...

class Personalization(_message.Message):
    __slots__ = ("on_missing", "missing_value_text")
    ON_MISSING_FIELD_NUMBER: _ClassVar[int]
    MISSING_VALUE_TEXT_FIELD_NUMBER: _ClassVar[int]
    on_missing: MissingValueAction
    missing_value_text: str
    def __init__(self, on_missing: _Optional[_Union[MissingValueAction, str]] = ..., missing_value_text: _Optional[str] = ...) -> None: ...

class UtmParameters(_message.Message):
    __slots__ = ("source", "medium", "campaign", "content", "term")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEDIUM_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    source: str
    medium: str
    campaign: str
    content: str
    term: str
    def __init__(self, source: _Optional[str] = ..., medium: _Optional[str] = ..., campaign: _Optional[str] = ..., content: _Optional[str] = ..., term: _Optional[str] = ...) -> None: ...

class DeliveryPolicy(_message.Message):
    __slots__ = ("frequency_cap", "quiet_hours", "max_per_minute")
    FREQUENCY_CAP_FIELD_NUMBER: _ClassVar[int]
    QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    frequency_cap: FrequencyCap
    quiet_hours: QuietHours
    max_per_minute: int
    def __init__(self, frequency_cap: _Optional[_Union[FrequencyCap, _Mapping]] = ..., quiet_hours: _Optional[_Union[QuietHours, _Mapping]] = ..., max_per_minute: _Optional[int] = ...) -> None: ...

class FrequencyCap(_message.Message):
    __slots__ = ("per_day", "per_week")
    PER_DAY_FIELD_NUMBER: _ClassVar[int]
    PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    per_day: int
    per_week: int
    def __init__(self, per_day: _Optional[int] = ..., per_week: _Optional[int] = ...) -> None: ...

class QuietHours(_message.Message):
    __slots__ = ("start", "end", "action")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    action: QuietHoursAction
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ..., action: _Optional[_Union[QuietHoursAction, str]] = ...) -> None: ...

class CampaignPolicy(_message.Message):
    __slots__ = ("ignore_frequency_cap", "quiet_hours", "ignore_quiet_hours", "max_per_minute", "control_group_percent")
    IGNORE_FREQUENCY_CAP_FIELD_NUMBER: _ClassVar[int]
    QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_GROUP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ignore_frequency_cap: bool
    quiet_hours: QuietHours
    ignore_quiet_hours: bool
    max_per_minute: int
    control_group_percent: int
    def __init__(self, ignore_frequency_cap: _Optional[bool] = ..., quiet_hours: _Optional[_Union[QuietHours, _Mapping]] = ..., ignore_quiet_hours: _Optional[bool] = ..., max_per_minute: _Optional[int] = ..., control_group_percent: _Optional[int] = ...) -> None: ...

class SendTiming(_message.Message):
    __slots__ = ("local_time", "next_day_if_passed", "cut_off_time", "cut_off_after_seconds")
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_DAY_IF_PASSED_FIELD_NUMBER: _ClassVar[int]
    CUT_OFF_TIME_FIELD_NUMBER: _ClassVar[int]
    CUT_OFF_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    local_time: str
    next_day_if_passed: bool
    cut_off_time: _timestamp_pb2.Timestamp
    cut_off_after_seconds: int
    def __init__(self, local_time: _Optional[str] = ..., next_day_if_passed: _Optional[bool] = ..., cut_off_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cut_off_after_seconds: _Optional[int] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("event_name", "event_filters", "inaction", "date_reminder", "person_cooldown_seconds", "start_time", "end_time")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FILTERS_FIELD_NUMBER: _ClassVar[int]
    INACTION_FIELD_NUMBER: _ClassVar[int]
    DATE_REMINDER_FIELD_NUMBER: _ClassVar[int]
    PERSON_COOLDOWN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    event_filters: _containers.RepeatedCompositeFieldContainer[_segment_pb2.PropertyCondition]
    inaction: Inaction
    date_reminder: DateReminder
    person_cooldown_seconds: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, event_name: _Optional[str] = ..., event_filters: _Optional[_Iterable[_Union[_segment_pb2.PropertyCondition, _Mapping]]] = ..., inaction: _Optional[_Union[Inaction, _Mapping]] = ..., date_reminder: _Optional[_Union[DateReminder, _Mapping]] = ..., person_cooldown_seconds: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Inaction(_message.Message):
    __slots__ = ("event_name", "event_filters", "window_seconds", "keep_first_wait")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FILTERS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIRST_WAIT_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    event_filters: _containers.RepeatedCompositeFieldContainer[_segment_pb2.PropertyCondition]
    window_seconds: int
    keep_first_wait: bool
    def __init__(self, event_name: _Optional[str] = ..., event_filters: _Optional[_Iterable[_Union[_segment_pb2.PropertyCondition, _Mapping]]] = ..., window_seconds: _Optional[int] = ..., keep_first_wait: _Optional[bool] = ...) -> None: ...

class DateReminder(_message.Message):
    __slots__ = ("property", "offset_seconds")
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    property: str
    offset_seconds: int
    def __init__(self, property: _Optional[str] = ..., offset_seconds: _Optional[int] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("at", "times", "recurrence")
    AT_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    times: SpecifiedTimes
    recurrence: Recurrence
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., times: _Optional[_Union[SpecifiedTimes, _Mapping]] = ..., recurrence: _Optional[_Union[Recurrence, _Mapping]] = ...) -> None: ...

class SpecifiedTimes(_message.Message):
    __slots__ = ("times",)
    TIMES_FIELD_NUMBER: _ClassVar[int]
    times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    def __init__(self, times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ...) -> None: ...

class Recurrence(_message.Message):
    __slots__ = ("rule", "start_time", "end_time", "timezone")
    RULE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    timezone: str
    def __init__(self, rule: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ...) -> None: ...

class MissedOccurrence(_message.Message):
    __slots__ = ("occurrence_time", "reason")
    OCCURRENCE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    occurrence_time: _timestamp_pb2.Timestamp
    reason: MissedReason
    def __init__(self, occurrence_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[_Union[MissedReason, str]] = ...) -> None: ...

class RunProgress(_message.Message):
    __slots__ = ("resolved", "queued", "sent", "failed", "suppressed", "expired")
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    resolved: int
    queued: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    def __init__(self, resolved: _Optional[int] = ..., queued: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., suppressed: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "campaign_id", "state", "audience", "failure_reason", "create_time", "progress", "finish_time", "warnings", "test", "phase", "related_run_id", "variant_decision", "rest_time", "held_push_services")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    RELATED_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_DECISION_FIELD_NUMBER: _ClassVar[int]
    REST_TIME_FIELD_NUMBER: _ClassVar[int]
    HELD_PUSH_SERVICES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    state: RunState
    audience: int
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    progress: RunProgress
    finish_time: _timestamp_pb2.Timestamp
    warnings: _containers.RepeatedScalarFieldContainer[RunWarning]
    test: bool
    phase: RunPhase
    related_run_id: str
    variant_decision: VariantDecision
    rest_time: _timestamp_pb2.Timestamp
    held_push_services: _containers.RepeatedCompositeFieldContainer[_common_pb2.HeldPushService]
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., audience: _Optional[int] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[RunProgress, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[RunWarning, str]]] = ..., test: _Optional[bool] = ..., phase: _Optional[_Union[RunPhase, str]] = ..., related_run_id: _Optional[str] = ..., variant_decision: _Optional[_Union[VariantDecision, _Mapping]] = ..., rest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., held_push_services: _Optional[_Iterable[_Union[_common_pb2.HeldPushService, _Mapping]]] = ...) -> None: ...

class DeliveryPlan(_message.Message):
    __slots__ = ("snapshot_time", "audience", "rows")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    audience: int
    rows: _containers.RepeatedCompositeFieldContainer[DeliveryPlanRow]
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[DeliveryPlanRow, _Mapping]]] = ...) -> None: ...

class DeliveryPlanRow(_message.Message):
    __slots__ = ("hour_start", "browser", "variant_id", "sent", "suppressed")
    HOUR_START_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    hour_start: _timestamp_pb2.Timestamp
    browser: _common_pb2.Browser
    variant_id: str
    sent: int
    suppressed: _containers.RepeatedCompositeFieldContainer[PlanSuppression]
    def __init__(self, hour_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., browser: _Optional[_Union[_common_pb2.Browser, str]] = ..., variant_id: _Optional[str] = ..., sent: _Optional[int] = ..., suppressed: _Optional[_Iterable[_Union[PlanSuppression, _Mapping]]] = ...) -> None: ...

class PlanSuppression(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.DeliveryReason
    count: int
    def __init__(self, reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., count: _Optional[int] = ...) -> None: ...

class RunRecipient(_message.Message):
    __slots__ = ("run_id", "subscriber_id", "status", "reason", "attempts", "finish_time", "explanation")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    status: RecipientStatus
    reason: _common_pb2.DeliveryReason
    attempts: int
    finish_time: _timestamp_pb2.Timestamp
    explanation: str
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., status: _Optional[_Union[RecipientStatus, str]] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., attempts: _Optional[int] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., explanation: _Optional[str] = ...) -> None: ...

class RecipientExplanation(_message.Message):
    __slots__ = ("run_id", "subscriber_id", "targeted", "not_targeted_reason", "status", "reason", "explanation", "attempts", "finish_time", "variant", "viewed_time", "clicked_time", "clicked_button", "closed_time", "conversions", "revenue", "converted_time", "run_start_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETED_FIELD_NUMBER: _ClassVar[int]
    NOT_TARGETED_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    VIEWED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLICKED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLICKED_BUTTON_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TIME_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_START_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    targeted: bool
    not_targeted_reason: NotTargetedReason
    status: RecipientStatus
    reason: _common_pb2.DeliveryReason
    explanation: str
    attempts: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeliveryAttempt]
    finish_time: _timestamp_pb2.Timestamp
    variant: str
    viewed_time: _timestamp_pb2.Timestamp
    clicked_time: _timestamp_pb2.Timestamp
    clicked_button: str
    closed_time: _timestamp_pb2.Timestamp
    conversions: int
    revenue: float
    converted_time: _timestamp_pb2.Timestamp
    run_start_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., targeted: _Optional[bool] = ..., not_targeted_reason: _Optional[_Union[NotTargetedReason, str]] = ..., status: _Optional[_Union[RecipientStatus, str]] = ..., reason: _Optional[_Union[_common_pb2.DeliveryReason, str]] = ..., explanation: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[_common_pb2.DeliveryAttempt, _Mapping]]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., variant: _Optional[str] = ..., viewed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clicked_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clicked_button: _Optional[str] = ..., closed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conversions: _Optional[int] = ..., revenue: _Optional[float] = ..., converted_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
