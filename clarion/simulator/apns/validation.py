"""Apple's checks on a notification request, each raising the reason APNs answers with
(see "Sending notification requests to APNs" and "Handling notification responses from
APNs"). The order is the simulator's: path, duplicated headers, provider token, then the
apns-* headers, the device token and the payload."""

from __future__ import annotations

import json
import re
import string
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from clarion.simulator.apns.model import ApnsRejected

MAX_PAYLOAD_BYTES = 4096  # every push type but VoIP (5120)
MAX_COLLAPSE_ID_BYTES = 64
PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "controls",
        "complication",
        "fileprovider",
        "liveactivity",
        "location",
        "mdm",
        "pushtotalk",
        "voip",
        "widgets",
    }
)
PRIORITIES = frozenset({1, 5, 10})  # 1 was added beside 5 and 10
SAFARI_TOKEN_HEX_DIGITS = 64  # macOS website push tokens are 32 bytes
_HEX = frozenset(string.hexdigits)
_DEVICE_PATH = re.compile(r"/3/device/([^/?]*)")
# Headers APNs reads; sending one twice is DuplicateHeaders.
_SINGLE_HEADERS = frozenset(
    {
        "authorization",
        "apns-id",
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
    }
)


@dataclass(frozen=True, slots=True)
class NotificationHeaders:
    apns_id: str | None
    topic: str
    push_type: str | None
    priority: int
    expiration: int | None
    collapse_id: str | None


def device_token_from_path(method: str, path: str) -> str:
    """The device token of `POST /3/device/<token>`."""
    match = _DEVICE_PATH.fullmatch(path)
    if match is None:
        raise ApnsRejected(404, "BadPath")
    if method != "POST":
        raise ApnsRejected(405, "MethodNotAllowed")
    if not match.group(1):
        raise ApnsRejected(400, "MissingDeviceToken")
    return match.group(1)


def single_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The request headers as a dict; 400 DuplicateHeaders if one APNs reads is repeated."""
    counts = Counter(name for name, _ in headers)
    if any(counts[name] > 1 for name in _SINGLE_HEADERS):
        raise ApnsRejected(400, "DuplicateHeaders")
    return {name: value for name, value in headers}


def parse_apns_id(value: str | None) -> str | None:
    """A canonical 8-4-4-4-12 UUID (either case) or absent; else 400 BadMessageId."""
    if value is None:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ApnsRejected(400, "BadMessageId") from None
    if str(parsed) != value.lower():  # uuid.UUID also takes braces, urn: and bare hex
        raise ApnsRejected(400, "BadMessageId")
    return value


def parse_notification_headers(headers: dict[str, str]) -> NotificationHeaders:
    apns_id = parse_apns_id(headers.get("apns-id"))
    topic = headers.get("apns-topic")
    if not topic:
        raise ApnsRejected(400, "MissingTopic")
    push_type = headers.get("apns-push-type")
    if push_type is not None and push_type not in PUSH_TYPES:
        raise ApnsRejected(400, "InvalidPushType")
    priority_text = headers.get("apns-priority")
    if priority_text is None:
        priority = 10
    elif not priority_text.isascii() or not priority_text.isdigit():
        raise ApnsRejected(400, "BadPriority")
    else:
        priority = int(priority_text)
        if priority not in PRIORITIES:
            raise ApnsRejected(400, "BadPriority")
    expiration_text = headers.get("apns-expiration")
    if expiration_text is None:
        expiration = None
    elif not expiration_text.isascii() or not expiration_text.isdigit():
        raise ApnsRejected(400, "BadExpirationDate")
    else:
        expiration = int(expiration_text)
    collapse_id = headers.get("apns-collapse-id")
    if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
        raise ApnsRejected(400, "BadCollapseId")
    return NotificationHeaders(apns_id, topic, push_type, priority, expiration, collapse_id)


def check_device_token_format(token: str) -> None:
    """Hex digits only, as many as a Safari website push token has; else BadDeviceToken."""
    if len(token) != SAFARI_TOKEN_HEX_DIGITS or not _HEX.issuperset(token):
        raise ApnsRejected(400, "BadDeviceToken")


def parse_payload(body: bytes, size: int | None = None) -> dict[str, Any]:
    """The JSON payload: 413 PayloadTooLarge above 4096 bytes; 400 PayloadEmpty when it is
    empty or is not a JSON object with an `aps` dictionary (APNs names no other reason for
    a payload it cannot read). `size`: the body's length when only its start was kept."""
    if (len(body) if size is None else size) > MAX_PAYLOAD_BYTES:
        raise ApnsRejected(413, "PayloadTooLarge")
    if not body.strip():
        raise ApnsRejected(400, "PayloadEmpty")
    try:
        payload = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise ApnsRejected(400, "PayloadEmpty") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
        raise ApnsRejected(400, "PayloadEmpty")
    return payload


def safari_problems(topic: str, payload: dict[str, Any]) -> tuple[str, ...]:
    """What would make Safari drop a website push APNs accepted (not refused by APNs)."""
    if not topic.startswith("web."):
        return ()
    problems = []
    aps = payload["aps"]
    alert = aps.get("alert")
    if not isinstance(alert, dict):
        problems.append("aps.alert must be a dictionary with title and body")
    else:
        for key in ("title", "body"):
            if not isinstance(alert.get(key), str):
                problems.append(f"aps.alert.{key} must be a string")
        if "action" in alert and not isinstance(alert["action"], str):
            problems.append("aps.alert.action must be a string")
    url_args = aps.get("url-args")
    if not isinstance(url_args, list) or not all(isinstance(a, str) for a in url_args):
        problems.append("aps.url-args must be a list of strings")
    return tuple(problems)
