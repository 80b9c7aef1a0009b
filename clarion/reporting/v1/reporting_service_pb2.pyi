from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from clarion.reporting.v1 import reporting_pb2 as _reporting_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListRunReportsRequest(_message.Message):
    __slots__ = ("campaign_id", "page_size", "page_token", "include_test")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TEST_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    page_size: int
    page_token: str
    include_test: bool
    def __init__(self, campaign_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_test: _Optional[bool] = ...) -> None: ...

class ListRunReportsResponse(_message.Message):
    __slots__ = ("reports", "next_page_token")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[_reporting_pb2.RunReport]
    next_page_token: str
    def __init__(self, reports: _Optional[_Iterable[_Union[_reporting_pb2.RunReport, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRecipientActivityRequest(_message.Message):
    __slots__ = ("run_id", "subscriber_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class GetRecipientActivityResponse(_message.Message):
    __slots__ = ("activity",)
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    activity: _reporting_pb2.RecipientActivity
    def __init__(self, activity: _Optional[_Union[_reporting_pb2.RecipientActivity, _Mapping]] = ...) -> None: ...

class GetRunReportRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _reporting_pb2.RunReport
    def __init__(self, report: _Optional[_Union[_reporting_pb2.RunReport, _Mapping]] = ...) -> None: ...

class GetCampaignReportRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetCampaignReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _reporting_pb2.CampaignReport
    def __init__(self, report: _Optional[_Union[_reporting_pb2.CampaignReport, _Mapping]] = ...) -> None: ...
