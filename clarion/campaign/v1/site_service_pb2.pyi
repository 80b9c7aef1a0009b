from clarion.campaign.v1 import site_pb2 as _site_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSiteRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSiteResponse(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: _site_pb2.Site
    def __init__(self, site: _Optional[_Union[_site_pb2.Site, _Mapping]] = ...) -> None: ...

class ResolveApiKeyRequest(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class ResolveApiKeyResponse(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class GetSiteCredentialsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSiteCredentialsResponse(_message.Message):
    __slots__ = ("site_id", "vapid_private_key", "vapid_public_key", "vapid_subject", "engagement_secret")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    VAPID_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    vapid_private_key: bytes
    vapid_public_key: bytes
    vapid_subject: str
    engagement_secret: bytes
    def __init__(self, site_id: _Optional[str] = ..., vapid_private_key: _Optional[bytes] = ..., vapid_public_key: _Optional[bytes] = ..., vapid_subject: _Optional[str] = ..., engagement_secret: _Optional[bytes] = ...) -> None: ...
