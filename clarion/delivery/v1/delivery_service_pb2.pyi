from clarion.common.v1 import common_pb2 as _common_pb2
from clarion.delivery.v1 import delivery_pb2 as _delivery_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id", "campaign_id", "notification", "ttl_seconds", "urgency")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    campaign_id: str
    notification: _common_pb2.Notification
    ttl_seconds: int
    urgency: _common_pb2.Urgency
    def __init__(self, run_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., notification: _Optional[_Union[_common_pb2.Notification, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., urgency: _Optional[_Union[_common_pb2.Urgency, str]] = ...) -> None: ...

class CreateDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run",)
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ...) -> None: ...

class EnqueueRecipientsRequest(_message.Message):
    __slots__ = ("run_id", "recipients")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    recipients: _containers.RepeatedCompositeFieldContainer[_delivery_pb2.Recipient]
    def __init__(self, run_id: _Optional[str] = ..., recipients: _Optional[_Iterable[_Union[_delivery_pb2.Recipient, _Mapping]]] = ...) -> None: ...

class EnqueueRecipientsResponse(_message.Message):
    __slots__ = ("queued",)
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    queued: int
    def __init__(self, queued: _Optional[int] = ...) -> None: ...

class StartDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class StartDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run",)
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ...) -> None: ...

class GetDeliveryRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetDeliveryRunResponse(_message.Message):
    __slots__ = ("delivery_run",)
    DELIVERY_RUN_FIELD_NUMBER: _ClassVar[int]
    delivery_run: _delivery_pb2.DeliveryRun
    def __init__(self, delivery_run: _Optional[_Union[_delivery_pb2.DeliveryRun, _Mapping]] = ...) -> None: ...

class GetRecipientOutcomeRequest(_message.Message):
    __slots__ = ("run_id", "subscriber_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    subscriber_id: str
    def __init__(self, run_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

class GetRecipientOutcomeResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: _delivery_pb2.RecipientOutcome
    def __init__(self, outcome: _Optional[_Union[_delivery_pb2.RecipientOutcome, _Mapping]] = ...) -> None: ...
