"""The one owner of notification content: what a notification may hold, and the push
payload it becomes.

A notification is the contract's own message (clarion.common.v1.Notification), stored
serialized; it reaches the browser as a clarion.common.v1.PushPayload JSON object that
this module renders, leaving the per-recipient fields to delivery. A new notification
field touches the two messages in common.proto and this module, nothing else.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from google.protobuf import json_format

from clarion.common.v1 import common_pb2
from services.kit.errors import InvalidArgument

MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 1024
MAX_URL_LENGTH = 2048
# RFC 8291 with one 4096-byte aes128gcm record: 4096 - 86 header - 16 tag - 1 delimiter,
# less the room delivery needs for each recipient's subscriber_id and engagement_token.
MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1
PER_RECIPIENT_ROOM = 256
MAX_SHARED_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES - PER_RECIPIENT_ROOM
# Run ids are only known when a run starts; this one has the same length (new_id: 32 hex).
PLACEHOLDER_RUN_ID = "run_" + "f" * 32

Notification = common_pb2.Notification

_URL_FIELDS = ("icon_url", "image_url", "target_url")


def validate(notification: Notification, campaign_id: str) -> None:
    """Raises InvalidArgument naming the first field that is wrong."""
    if not notification.title.strip():
        raise InvalidArgument(
            "MISSING_TITLE", "the notification needs a title", field="notification.title"
        )
    _check_length("notification.title", notification.title, MAX_TITLE_LENGTH, "INVALID_TITLE")
    _check_length("notification.body", notification.body, MAX_BODY_LENGTH, "INVALID_BODY")
    for name in _URL_FIELDS:
        _check_url(f"notification.{name}", getattr(notification, name))
    size = len(render_payload(notification, campaign_id, PLACEHOLDER_RUN_ID))
    if size > MAX_SHARED_PAYLOAD_BYTES:
        raise InvalidArgument(
            "PAYLOAD_TOO_LARGE",
            f"the push message would carry {size} bytes of JSON, more than the "
            f"{MAX_SHARED_PAYLOAD_BYTES} bytes a Web Push message leaves for it; shorten the "
            "title, body or URLs",
            field="notification",
            payload_bytes=str(size),
            limit_bytes=str(MAX_SHARED_PAYLOAD_BYTES),
        )


def render_payload(notification: Notification, campaign_id: str, run_id: str) -> bytes:
    """The run's PushPayload JSON: compact UTF-8, empty fields left out."""
    payload = common_pb2.PushPayload(
        title=notification.title,
        body=notification.body,
        icon=notification.icon_url,
        image=notification.image_url,
        url=notification.target_url,
        campaign_id=campaign_id,
        run_id=run_id,
    )
    fields = json_format.MessageToDict(payload, preserving_proto_field_name=True)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _check_length(field: str, value: str, limit: int, reason: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            reason, f"{field} is {len(value)} characters; at most {limit} are allowed", field=field
        )


def _check_url(field: str, url: str) -> None:
    if not url:
        return
    _check_length(field, url, MAX_URL_LENGTH, "INVALID_URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not host
        or any(c.isspace() or ord(c) < 0x20 for c in url)
    ):
        shown = url if len(url) <= 80 else url[:77] + "..."
        raise InvalidArgument(
            "INVALID_URL",
            f"{field} must be an absolute https:// (or http://) URL, got {shown!r}",
            field=field,
        )
