import datetime

from clarion.campaign.v1 import site_pb2 as _site_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
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

class ResolveWebsitePushIdRequest(_message.Message):
    __slots__ = ("website_push_id",)
    WEBSITE_PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    website_push_id: str
    def __init__(self, website_push_id: _Optional[str] = ...) -> None: ...

class ResolveWebsitePushIdResponse(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class GetLegacySafariCredentialsRequest(_message.Message):
    __slots__ = ("include_push_package",)
    INCLUDE_PUSH_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    include_push_package: bool
    def __init__(self, include_push_package: _Optional[bool] = ...) -> None: ...

class GetLegacySafariCredentialsResponse(_message.Message):
    __slots__ = ("site_id", "apns_private_key", "apns_key_id", "apns_team_id", "apns_topic", "website_name", "website_push_id", "allowed_domains", "url_format_string", "certificate", "certificate_private_key", "icons", "certificate_expire_time", "certificate_chain")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    APNS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_TOPIC_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_NAME_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    URL_FORMAT_STRING_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    ICONS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    apns_private_key: bytes
    apns_key_id: str
    apns_team_id: str
    apns_topic: str
    website_name: str
    website_push_id: str
    allowed_domains: _containers.RepeatedScalarFieldContainer[str]
    url_format_string: str
    certificate: bytes
    certificate_private_key: bytes
    icons: _site_pb2.LegacySafariIcons
    certificate_expire_time: _timestamp_pb2.Timestamp
    certificate_chain: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, site_id: _Optional[str] = ..., apns_private_key: _Optional[bytes] = ..., apns_key_id: _Optional[str] = ..., apns_team_id: _Optional[str] = ..., apns_topic: _Optional[str] = ..., website_name: _Optional[str] = ..., website_push_id: _Optional[str] = ..., allowed_domains: _Optional[_Iterable[str]] = ..., url_format_string: _Optional[str] = ..., certificate: _Optional[bytes] = ..., certificate_private_key: _Optional[bytes] = ..., icons: _Optional[_Union[_site_pb2.LegacySafariIcons, _Mapping]] = ..., certificate_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_chain: _Optional[_Iterable[bytes]] = ...) -> None: ...
