"""What a browser may send the gateway, declared: each route's path parameters and JSON
body as pydantic models, and a JSON reader that refuses what would hurt the parser.

Everything is checked here, before any other service is called, and each refusal is a
4xx ApiError naming the field, that quotes at most a few dozen characters of the
caller's value. The constraints a string may have (no NUL, control characters or lone
surrogates; a length; the id alphabet) are declared once below as Annotated types, the
models combine them. Other services check their own rules again (an endpoint's host,
a time zone's name, a P-256 point): the gateway relays their refusals as 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from aiohttp import hdrs, web
from annotated_types import MaxLen, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from clarion.common.v1 import common_pb2
from services.gateway.errors import ApiError, quote

M = TypeVar("M", bound=BaseModel)

# Our bodies nest three levels (body, subscription, keys); JSON deeper than this is
# refused before it is parsed, so no nesting can exhaust the parser's recursion.
MAX_JSON_DEPTH = 32
ID_LENGTH = 128
BUTTON_LENGTH = 64
ENDPOINT_LENGTH = 2048
TIMEZONE_LENGTH = 64
PROFILE_ID_LENGTH = 128
# A P-256 point is 87 base64url characters, an auth secret 22; room for padding, no more.
BASE64URL_LENGTH = 128
TOKEN_LENGTH = 128
# What the SDK may track (track): the limits segment declares for an Event, so what breaks
# one is refused here as a whole; its own rules (a name's characters, a property's type
# fixed by first use, a time too far ahead) come back per event.
MAX_TRACK_EVENTS = 100
EVENT_NAME_LENGTH = 128
PROPERTY_NAME_LENGTH = 64
PROPERTY_STRING_LENGTH = 1024
MAX_PROPERTIES = 100
MAX_LIST_ITEMS = 100
# What a browser may report (client-errors): a closed set of kinds, a bounded message.
CLIENT_ERROR_MESSAGE_LENGTH = 500
SDK_VERSION_LENGTH = 32

ID_ALPHABET = "A-Z a-z 0-9 - _ . :"
_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_SITE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_SDK_VERSION = re.compile(r"[A-Za-z0-9.+-]+")
# NUL (PostgreSQL cannot store it), the other C0 and C1 controls and DEL, and lone
# surrogates: "\ud800" is valid JSON, but no UTF-8 (protobuf, a database) can carry it.
_HOSTILE_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LOGGED_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)
# A JSON string (possessive, so an unterminated one runs to the end in linear time) or
# a bracket: what the depth count looks at.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)

# Content types a JSON body may come with: JSON itself, and text/plain, which is what
# navigator.sendBeacon() sends a string as (a request a browser sends without a preflight).
_JSON_MEDIA_TYPES = ("application/json", "text/plain")
_UTF8 = ("utf-8", "utf8")


# --- string constraints, declared once -------------------------------------------------


def _no_hostile_characters(value: str) -> str:
    found = _HOSTILE_CHARACTER.search(value)
    if found is not None:
        raise PydanticCustomError(
            "INVALID_CHARACTERS",
            "must not contain NUL, control characters or unpaired surrogates; "
            "found U+{code_point} at index {index}",
            {"code_point": f"{ord(found.group()):04X}", "index": found.start()},
        )
    return value


def _id_alphabet(value: str) -> str:
    if value and not _ID.fullmatch(value):
        raise PydanticCustomError(
            "INVALID_ID", "must be characters of {alphabet} only", {"alphabet": ID_ALPHABET}
        )
    return value


def _site_id(value: str) -> str:
    # A malformed id names no site, and must not reach gRPC metadata.
    if not _SITE_ID.fullmatch(value):
        raise PydanticCustomError("SITE_NOT_FOUND", "names no site")
    return value


def _base64url(value: str) -> str:
    try:
        base64url_decode(value)
    except ValueError:
        raise PydanticCustomError(
            "INVALID_BASE64URL", "must be base64url text (A-Z a-z 0-9 - _)"
        ) from None
    return value


def strip_controls(value: object) -> object:
    """A string with each NUL, control character, unpaired surrogate, line separator and
    bidirectional or zero-width formatting character replaced by a space (the same
    length), so it logs as one line that reads as it is; anything else as it is."""
    return _LOGGED_CONTROL.sub(" ", value) if isinstance(value, str) else value


def _sdk_version(value: str) -> str:
    if not _SDK_VERSION.fullmatch(value):
        raise PydanticCustomError(
            "INVALID_SDK_VERSION", "must be a version such as 0.1.0 (A-Z a-z 0-9 . + -)"
        )
    return value


def _one_of(code: str, choices: Mapping[str, object]) -> AfterValidator:
    def check(value: str) -> str:
        if value and value not in choices:
            raise PydanticCustomError(
                code,
                "must be one of {choices}, got {value}",
                {"choices": ", ".join(choices), "value": quote(value)},
            )
        return value

    return AfterValidator(check)


_Clean = AfterValidator(_no_hostile_characters)
# Length first (pydantic checks it inside the str schema), then the characters.
Id = Annotated[str, MinLen(1), MaxLen(ID_LENGTH), _Clean, AfterValidator(_id_alphabet)]
SiteId = Annotated[str, AfterValidator(_site_id)]
Button = Annotated[str, MaxLen(BUTTON_LENGTH), _Clean, AfterValidator(_id_alphabet)]
Endpoint = Annotated[str, MinLen(1), MaxLen(ENDPOINT_LENGTH), _Clean]
Base64Url = Annotated[str, MinLen(1), MaxLen(BASE64URL_LENGTH), _Clean, AfterValidator(_base64url)]
Timezone = Annotated[str, MaxLen(TIMEZONE_LENGTH), _Clean]
ProfileId = Annotated[str, MaxLen(PROFILE_ID_LENGTH), _Clean]
Token = Annotated[str, MaxLen(TOKEN_LENGTH), _Clean]

# RFC 3339: a date, "T" (or t or a space), a time, and a zone (Z or an offset).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(value: str) -> str:
    rfc3339_time(value)
    return value


def rfc3339_time(value: str) -> datetime:
    """An RFC 3339 time as a UTC datetime (nanoseconds cut to microseconds)."""
    if not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "INVALID_TIMESTAMP", "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"
        )
    text = value.upper().replace(" ", "T").replace("Z", "+00:00")
    # fromisoformat takes at most 6 fractional digits: nanoseconds are cut to microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "INVALID_TIMESTAMP", "is not a valid RFC 3339 time (check the date and offset)"
        ) from None


def _property_text(value: str, what: str) -> None:
    if len(value) > PROPERTY_STRING_LENGTH:
        raise PydanticCustomError(
            "FIELD_TOO_LONG",
            "{what} must be at most {limit} characters, got {length}",
            {"what": what, "limit": PROPERTY_STRING_LENGTH, "length": len(value)},
        )
    _no_hostile_characters(value)


def _properties(value: dict[Any, Any]) -> dict[Any, Any]:
    """{name: string | number | boolean | list of strings}, within segment's limits.

    Checked by hand, so an error names the property by its quoted (bounded) name."""
    if len(value) > MAX_PROPERTIES:
        raise PydanticCustomError(
            "TOO_MANY_PROPERTIES", "must have at most {limit} properties", {"limit": MAX_PROPERTIES}
        )
    for name, item in value.items():
        if len(name) > PROPERTY_NAME_LENGTH:
            raise PydanticCustomError(
                "FIELD_TOO_LONG",
                "names must be at most {limit} characters, got {length}",
                {"limit": PROPERTY_NAME_LENGTH, "length": len(name)},
            )
        _no_hostile_characters(name)
        what = f"property {quote(name)}"
        if isinstance(item, bool | str):
            if isinstance(item, str):
                _property_text(item, what)
        elif isinstance(item, int | float):
            try:
                finite = math.isfinite(float(item))
            except OverflowError:
                finite = False
            if not finite:
                raise PydanticCustomError(
                    "INVALID_NUMBER", "{what} must be a finite number", {"what": what}
                )
        elif isinstance(item, list):
            if len(item) > MAX_LIST_ITEMS:
                raise PydanticCustomError(
                    "LIST_TOO_LONG",
                    "{what} must have at most {limit} items",
                    {"what": what, "limit": MAX_LIST_ITEMS},
                )
            for entry in item:
                if not isinstance(entry, str):
                    raise PydanticCustomError(
                        "INVALID_FIELD_TYPE",
                        "{what} must be a list of strings only",
                        {"what": what},
                    )
                _property_text(entry, f"an item of {what}")
        else:
            raise PydanticCustomError(
                "INVALID_FIELD_TYPE",
                "{what} must be a string, number, boolean or list of strings",
                {"what": what},
            )
    return value


RequiredProfileId = Annotated[str, MinLen(1), MaxLen(PROFILE_ID_LENGTH), _Clean]
EventName = Annotated[str, MinLen(1), MaxLen(EVENT_NAME_LENGTH), _Clean]
OccurTime = Annotated[str, MaxLen(64), _Clean, AfterValidator(_rfc3339)]
Properties = Annotated[dict[Any, Any], AfterValidator(_properties)]

BROWSERS: Mapping[str, common_pb2.Browser] = {
    "chrome": common_pb2.BROWSER_CHROME,
    "firefox": common_pb2.BROWSER_FIREFOX,
    "edge": common_pb2.BROWSER_EDGE,
    "opera": common_pb2.BROWSER_OPERA,
    "safari": common_pb2.BROWSER_SAFARI,
    "other": common_pb2.BROWSER_OTHER,
}
KINDS: Mapping[str, common_pb2.EngagementKind] = {
    "viewed": common_pb2.ENGAGEMENT_KIND_VIEWED,
    "clicked": common_pb2.ENGAGEMENT_KIND_CLICKED,
    "closed": common_pb2.ENGAGEMENT_KIND_CLOSED,
}
# What went wrong in a browser (the SDK's and the service worker's words): a closed set,
# so it can be a metric label.
CLIENT_ERROR_KINDS: Mapping[str, str] = {
    "bad_payload": "a push the worker could not read (not JSON, no title, ...)",
    "unknown_version": "a push of a payload version the worker does not know",
    "show_failed": "showNotification refused the notification",
    "open_failed": "a click could not open or focus a window",
    "report_failed": "a view, click or close could not be reported",
    "subscribe_failed": "subscribing or re-registering the browser failed",
    "handler_failed": "another failure in a service worker handler",
}
Browser = Annotated[str, MaxLen(ID_LENGTH), _Clean, _one_of("INVALID_BROWSER", BROWSERS)]
Kind = Annotated[str, MinLen(1), MaxLen(ID_LENGTH), _Clean, _one_of("INVALID_KIND", KINDS)]
ClientErrorKind = Annotated[
    str, MinLen(1), MaxLen(ID_LENGTH), _Clean, _one_of("INVALID_KIND", CLIENT_ERROR_KINDS)
]
# A browser's error text: control characters become spaces (it is logged), not refused.
ClientErrorMessage = Annotated[
    str, BeforeValidator(strip_controls), MinLen(1), MaxLen(CLIENT_ERROR_MESSAGE_LENGTH)
]
SdkVersion = Annotated[
    str, MinLen(1), MaxLen(SDK_VERSION_LENGTH), _Clean, AfterValidator(_sdk_version)
]


# --- models ----------------------------------------------------------------------------


class _Input(BaseModel):
    # Strict: 42 is not the string "42"; fields we do not know (expirationTime) are ignored.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class SitePath(_Input):
    site_id: SiteId


class SubscriberPath(SitePath):
    subscriber_id: Id


class PushKeys(_Input):
    p256dh: Base64Url
    auth: Base64Url


class PushSubscription(_Input):
    """PushSubscription.toJSON(), as the browser gives it."""

    endpoint: Endpoint
    keys: PushKeys


class SubscribeBody(_Input):
    subscription: PushSubscription
    browser: Browser | None = None
    timezone: Timezone | None = None
    profile_id: ProfileId | None = None


class EventBody(_Input):
    kind: Kind
    run_id: Id
    campaign_id: Id
    subscriber_id: Id
    button: Button | None = None
    engagement_token: Token | None = None


class IdentifyBody(_Input):
    subscriber_id: Id
    profile_id: RequiredProfileId
    # Set on the profile (as track's event properties: the same types and limits).
    properties: Properties | None = None


class TrackedEvent(_Input):
    event_id: Id
    name: EventName
    # RFC 3339 (rfc3339_time reads it); absent means now.
    occur_time: OccurTime | None = None
    properties: Properties | None = None


class TrackBody(_Input):
    subscriber_id: Id
    events: Annotated[list[TrackedEvent], MinLen(1), MaxLen(MAX_TRACK_EVENTS)]


class ClientErrorBody(_Input):
    kind: ClientErrorKind
    message: ClientErrorMessage
    sdk_version: SdkVersion
    subscriber_id: Id | None = None
    run_id: Id | None = None


_SITE_ID_ADAPTER: TypeAdapter[str] = TypeAdapter(SiteId)


# --- reading a request -----------------------------------------------------------------


def path(request: web.Request, model: type[M]) -> M:
    """The route's path parameters; a site id that cannot name a site is 404."""
    return _validate(model, dict(request.match_info))


def site_path(request: web.Request) -> str:
    """The route's site id, as `path(request, SitePath).site_id` answers it (one regex
    match when it is well formed; the model, and its very error, when it is not)."""
    site_id = request.match_info.get("site_id")
    if type(site_id) is str and _SITE_ID.fullmatch(site_id):
        return site_id
    return path(request, SitePath).site_id


def require_site_id(site_id: str) -> None:
    """404 for a site id that cannot name a site (it must not reach gRPC metadata)."""
    if type(site_id) is str and _SITE_ID.fullmatch(site_id):
        return
    try:
        _SITE_ID_ADAPTER.validate_python(site_id)
    except ValidationError:
        raise ApiError(404, "SITE_NOT_FOUND", "site_id names no site") from None


async def body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`: UTF-8, at most MAX_JSON_DEPTH deep, an object."""
    return _validate(model, await _json_body(request))


async def _json_body(request: web.Request) -> Any:
    _require_json_content_type(request)
    raw = await request.read()  # raises 413 past the application's client_max_size
    return parse_json(raw)


@dataclass(slots=True)
class Subscription:
    """A subscribe call's body, checked as SubscribeBody and decoded: what the segment
    service's RegisterSubscriber takes ("" for what the browser left out)."""

    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: str
    timezone: str
    profile_id: str


async def subscribe_body(request: web.Request) -> Subscription:
    """The subscribe body, as `body(request, SubscribeBody)` would accept or refuse it.

    Registration is the gateway's busiest call, and a SubscribeBody model costs more
    than the rest of the gateway's work on it: a body that is plainly valid (the types
    and limits below, checked by hand) is taken as it is; anything else goes through the
    model, so every refusal is the model's, word for word.
    """
    data = await _json_body(request)
    fast = _plain_subscription(data)
    if fast is not None:
        return fast
    checked = _validate(SubscribeBody, data)
    keys = checked.subscription.keys
    return Subscription(
        checked.subscription.endpoint,
        base64url_decode(keys.p256dh),
        base64url_decode(keys.auth),
        checked.browser or "",
        checked.timezone or "",
        checked.profile_id or "",
    )


def _plain_text(value: object, max_length: int, min_length: int = 0) -> bool:
    return (
        type(value) is str
        and min_length <= len(value) <= max_length
        and _HOSTILE_CHARACTER.search(value) is None
    )


def _plain_key(value: object) -> bytes | None:
    if not _plain_text(value, BASE64URL_LENGTH, 1):
        return None
    try:
        return base64url_decode(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def _plain_optional(data: dict[str, Any], name: str, max_length: int) -> str | None:
    value = data.get(name)
    if value is None:
        return ""
    return value if _plain_text(value, max_length) else None


def _plain_subscription(data: object) -> Subscription | None:
    """The body when SubscribeBody would take it as it is; None: ask the model."""
    if type(data) is not dict:
        return None
    subscription = data.get("subscription")
    if type(subscription) is not dict:
        return None
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if not _plain_text(endpoint, ENDPOINT_LENGTH, 1) or type(keys) is not dict:
        return None
    p256dh = _plain_key(keys.get("p256dh"))
    auth = _plain_key(keys.get("auth"))
    browser = _plain_optional(data, "browser", ID_LENGTH)
    timezone = _plain_optional(data, "timezone", TIMEZONE_LENGTH)
    profile_id = _plain_optional(data, "profile_id", PROFILE_ID_LENGTH)
    if (
        p256dh is None
        or auth is None
        or browser is None
        or (browser and browser not in BROWSERS)
        or timezone is None
        or profile_id is None
    ):
        return None
    return Subscription(endpoint, p256dh, auth, browser, timezone, profile_id)  # type: ignore[arg-type]


def _require_json_content_type(request: web.Request) -> None:
    if hdrs.CONTENT_TYPE not in request.headers:
        return
    media_type = request.content_type.lower()
    if media_type not in _JSON_MEDIA_TYPES and not media_type.endswith("+json"):
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type must be application/json, got {quote(media_type)}",
        )
    charset = request.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"the Content-Type charset must be utf-8, got {quote(charset)}",
        )


def parse_json(raw: bytes) -> Any:
    """JSON text (RFC 8259: UTF-8, no NaN or Infinity) nested at most MAX_JSON_DEPTH deep."""
    if not raw.strip():
        raise ApiError(400, "INVALID_JSON", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(
            400,
            "INVALID_ENCODING",
            f"the request body must be UTF-8 JSON; byte {error.start} is not UTF-8",
        ) from None
    # Nesting needs an opening bracket per level: with few brackets in all (a subscribe
    # has three) the text cannot be too deep, and the scan is skipped.
    brackets = text.count("{") + text.count("[")
    depth = json_depth(text) if brackets > MAX_JSON_DEPTH else brackets
    if depth > MAX_JSON_DEPTH:
        raise ApiError(
            400,
            "JSON_TOO_DEEP",
            f"the request body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed",
        )
    try:
        if text.startswith("\ufeff"):  # what json.loads says of a str that starts so
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except _NotJson as error:
        raise ApiError(
            400, "INVALID_JSON", f"the request body is not valid JSON: {error}"
        ) from None
    except json.JSONDecodeError as error:
        # error.msg is the parser's own words ("Expecting value"), never the caller's text.
        raise ApiError(
            400,
            "INVALID_JSON",
            f"the request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}",
        ) from None
    except (ValueError, RecursionError):
        # A number of more than 4,300 digits; or recursion the depth count did not foresee.
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in `text`, brackets inside strings not counted.

    Linear in the text's length and without recursion, whatever the text is. Where the
    text is not JSON it counts the part a parser would read before failing.
    """
    depth = deepest = 0
    for token in _JSON_TOKEN.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


# One decoder for every body (json.loads with an argument builds one per call).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def base64url_decode(value: str) -> bytes:
    """Decodes base64url with or without padding (browsers send it without).

    Raises ValueError for anything else.
    """
    if not _BASE64URL.fullmatch(value):
        raise ValueError("not base64url text")
    unpadded = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        raise ValueError("not valid base64url") from None


# --- from pydantic's errors to the browser's -------------------------------------------

_OBJECT_ERRORS = frozenset({"model_type", "dict_type", "model_attributes_type"})
_STATUS = {"SITE_NOT_FOUND": 404}


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _api_error(error) from None


def _api_error(error: ValidationError) -> ApiError:
    """The first problem pydantic found (in field order), as a 4xx naming the field.

    Only this gateway's own words and the quoted (bounded) value of a choice are shown,
    never pydantic's message, which would repeat a caller's value at any length.
    """
    first = error.errors(include_url=False)[0]
    kind, value = first["type"], first.get("input")
    field = ".".join(str(part) for part in first["loc"])
    if not field:
        return ApiError(400, "INVALID_BODY", "the request body must be a JSON object")
    if kind == "missing" or value is None:
        return ApiError(400, "MISSING_FIELD", f"{field} is required")
    if kind in ("string_too_short", "too_short"):
        return ApiError(400, "MISSING_FIELD", f"{field} must not be empty")
    if kind in ("string_too_long", "too_long"):
        limit = (first.get("ctx") or {}).get("max_length")
        unit = "characters" if isinstance(value, str) else "items"
        return ApiError(
            400,
            "FIELD_TOO_LONG",
            f"{field} must be at most {limit} {unit}, got {len(value)}",
        )
    if kind == "string_type":
        return ApiError(
            400, "INVALID_FIELD_TYPE", f"{field} must be a string, got {_json_type(value)}"
        )
    if kind in _OBJECT_ERRORS:
        return ApiError(
            400, "INVALID_FIELD_TYPE", f"{field} must be a JSON object, got {_json_type(value)}"
        )
    if kind == "string_unicode" and isinstance(value, str):
        # pydantic-core refuses a lone surrogate before our own check sees it.
        try:
            _no_hostile_characters(value)
        except PydanticCustomError as hostile:
            return ApiError(400, hostile.type, f"{field} {hostile.message()}")
    if kind.isupper():  # our own PydanticCustomError: its type is the error code
        return ApiError(_STATUS.get(kind, 400), kind, f"{field} {first['msg']}")
    return ApiError(400, "INVALID_FIELD", f"{field} is not valid")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
