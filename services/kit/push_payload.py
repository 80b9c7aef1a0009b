"""The push message body: the JSON a Clarion service worker receives.

A wire format like the protos, between delivery (which sends it) and the browser
(which shows it); campaign also needs it to refuse a notification too large to send.
"""

from __future__ import annotations

import json

# RFC 8291 with one 4096-byte record: the 86-byte header, the 16-byte tag and the
# padding delimiter leave this much for the plaintext.
MAX_PUSH_PAYLOAD_BYTES = 4096 - 86 - 16 - 1


def push_payload(
    *,
    title: str,
    body: str,
    icon_url: str,
    image_url: str,
    target_url: str,
    campaign_id: str,
    run_id: str,
) -> bytes:
    """Compact UTF-8 JSON; empty values are left out to save room."""
    fields = {
        "title": title,
        "body": body,
        "icon": icon_url,
        "image": image_url,
        "url": target_url,
        "campaign_id": campaign_id,
        "run_id": run_id,
    }
    present = {key: value for key, value in fields.items() if value}
    return json.dumps(present, ensure_ascii=False, separators=(",", ":")).encode()
