from clarion.campaign.v1 import site_pb2 as _site_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("site_id", "vapid_private_key", "vapid_public_key", "vapid_subject", "engagement_secret", "current_vapid_key_id", "vapid_keys")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    VAPID_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VAPID_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    VAPID_KEYS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    vapid_private_key: bytes
    vapid_public_key: bytes
    vapid_subject: str
    engagement_secret: bytes
    current_vapid_key_id: str
    vapid_keys: _containers.RepeatedCompositeFieldContainer[VapidKeyPair]
    def __init__(self, site_id: _Optional[str] = ..., vapid_private_key: _Optional[bytes] = ..., vapid_public_key: _Optional[bytes] = ..., vapid_subject: _Optional[str] = ..., engagement_secret: _Optional[bytes] = ..., current_vapid_key_id: _Optional[str] = ..., vapid_keys: _Optional[_Iterable[_Union[VapidKeyPair, _Mapping]]] = ...) -> None: ...

class VapidKeyPair(_message.Message):
    __slots__ = ("vapid_key_id", "private_key", "public_key")
    VAPID_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    vapid_key_id: str
    private_key: bytes
    public_key: bytes
    def __init__(self, vapid_key_id: _Optional[str] = ..., private_key: _Optional[bytes] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class ListSitesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSitesResponse(_message.Message):
    __slots__ = ("sites", "next_page_token")
    SITES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sites: _containers.RepeatedCompositeFieldContainer[_site_pb2.Site]
    next_page_token: str
    def __init__(self, sites: _Optional[_Iterable[_Union[_site_pb2.Site, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
