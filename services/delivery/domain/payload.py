"""What each recipient is sent: the run's PushPayload with its per-recipient fields, the
RFC 8030 headers and the Topic.

Campaign owns the notification and renders the shared part of the PushPayload JSON
(clarion.common.v1.PushPayload); delivery only adds `subscriber_id` and
`engagement_token` to each copy, so a new notification field never touches delivery.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]

from yarl import URL

# RFC 8291 with one 4096-byte record: the 86-byte header, the 16-byte tag and the
# padding delimiter leave this much for the plaintext.
MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1
# What the per-recipient fields may add: ids of up to 128 characters and a 43-character
# token, with their keys and quotes. Campaign keeps its part under the rest.
PER_RECIPIENT_ROOM = 256

URGENCIES = ("very-low", "low", "normal", "high")


class PayloadError(ValueError):
    """The shared payload is not a JSON object delivery can add fields to."""


def check_shared_payload(payload: bytes) -> None:
    """Refuses what `for_recipient` could not extend, or what would not fit."""
    if len(payload) > MAX_PAYLOAD_BYTES - PER_RECIPIENT_ROOM:
        raise PayloadError(
            f"content.payload is {len(payload)} bytes; at most "
            f"{MAX_PAYLOAD_BYTES - PER_RECIPIENT_ROOM} leave room for the per-recipient fields"
        )
    try:
        parsed = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("content.payload is not UTF-8 JSON") from None
    if not isinstance(parsed, dict) or not parsed:
        raise PayloadError("content.payload must be a non-empty JSON object")
    if not payload.rstrip().endswith(b"}"):
        raise PayloadError("content.payload must end with the object's closing brace")
    if "subscriber_id" in parsed or "engagement_token" in parsed:
        raise PayloadError("content.payload must not carry the per-recipient fields")


def for_recipient(shared: bytes, subscriber_id: str, engagement_token: str) -> bytes:
    """The shared payload with this recipient's fields appended to the JSON object."""
    # json.dumps of a str, without its per-call layers (one call per recipient).
    extra = (
        f',"subscriber_id":{_json_string(subscriber_id)},'
        f'"engagement_token":{_json_string(engagement_token)}}}'
    )
    return shared.rstrip()[:-1] + extra.encode()


_json_string = encode_basestring_ascii


def topic_for(run_id: str) -> str:
    """A run's RFC 8030 Topic: the same on every attempt, so a push service replaces a
    still-pending duplicate; 32 characters of the URL-safe base64 alphabet."""
    digest = hashlib.sha256(b"clarion-run:" + run_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def endpoint_origin(endpoint: str) -> str:
    """The VAPID `aud` claim: scheme, host and (non-default) port of the push service."""
    # url_authority's `scheme://authority` (up to the first "/", "?" or "#" after the
    # first "://") in one regular-expression search: called several times per send.
    found = _AUTHORITY_END.search(endpoint)
    if found is None:
        return str(URL(endpoint).origin())
    return _origin(endpoint[: found.end()])


_AUTHORITY_END = re.compile(r"://[^/?#]*")


@functools.lru_cache(maxsize=4096)
def _origin(authority: str) -> str:
    # Endpoints are unique per browser, their push services few: parse each service once.
    return str(URL(authority).origin())
