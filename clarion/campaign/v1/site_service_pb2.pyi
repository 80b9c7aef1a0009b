from clarion.campaign.v1 import site_pb2 as _site_pb2
from clarion.common.v1 import constraints_pb2 as _constraints_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class RotateApiKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateApiKeyResponse(_message.Message):
    __slots__ = ("site_id", "api_key")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    api_key: str
    def __init__(self, site_id: _Optional[str] = ..., api_key: _Optional[str] = ...) -> None: ...

class UpdateSiteRequest(_message.Message):
    __slots__ = ("site", "update_mask")
    SITE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    site: _site_pb2.Site
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, site: _Optional[_Union[_site_pb2.Site, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSiteResponse(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: _site_pb2.Site
    def __init__(self, site: _Optional[_Union[_site_pb2.Site, _Mapping]] = ...) -> None: ...

class ImportVapidKeyRequest(_message.Message):
    __slots__ = ("private_key", "public_key")
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    private_key: bytes
    public_key: bytes
    def __init__(self, private_key: _Optional[bytes] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class ImportVapidKeyResponse(_message.Message):
    __slots__ = ("vapid_key", "created")
    VAPID_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    vapid_key: _site_pb2.VapidKey
    created: bool
    def __init__(self, vapid_key: _Optional[_Union[_site_pb2.VapidKey, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class SetLegacySafariRequest(_message.Message):
    __slots__ = ("apns_private_key", "apns_key_id", "apns_team_id", "website_push_id", "website_name", "allowed_domains", "url_format_string", "certificate", "certificate_private_key", "icons")
    APNS_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    APNS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APNS_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    URL_FORMAT_STRING_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    ICONS_FIELD_NUMBER: _ClassVar[int]
    apns_private_key: bytes
    apns_key_id: str
    apns_team_id: str
    website_push_id: str
    website_name: str
    allowed_domains: _containers.RepeatedScalarFieldContainer[str]
    url_format_string: str
    certificate: bytes
    certificate_private_key: bytes
    icons: _site_pb2.LegacySafariIcons
    def __init__(self, apns_private_key: _Optional[bytes] = ..., apns_key_id: _Optional[str] = ..., apns_team_id: _Optional[str] = ..., website_push_id: _Optional[str] = ..., website_name: _Optional[str] = ..., allowed_domains: _Optional[_Iterable[str]] = ..., url_format_string: _Optional[str] = ..., certificate: _Optional[bytes] = ..., certificate_private_key: _Optional[bytes] = ..., icons: _Optional[_Union[_site_pb2.LegacySafariIcons, _Mapping]] = ...) -> None: ...

class SetLegacySafariResponse(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: _site_pb2.Site
    def __init__(self, site: _Optional[_Union[_site_pb2.Site, _Mapping]] = ...) -> None: ...
