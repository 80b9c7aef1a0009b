"""What a run sends: the notification JSON, its RFC 8030 headers and the Topic."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Protocol

# RFC 8291 §4: one 4096-byte record holds the 86-byte header, the 16-byte tag and the
# padding delimiter, which leaves this much for the plaintext.
MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1

URGENCIES = ("very-low", "low", "normal", "high")


class NotificationFields(Protocol):
    """A stored Run or a NewRun about to be stored."""

    @property
    def run_id(self) -> str: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def icon_url(self) -> str: ...
    @property
    def image_url(self) -> str: ...
    @property
    def target_url(self) -> str: ...


def build_payload(run: NotificationFields) -> bytes:
    """The JSON the service worker shows: compact UTF-8, empty values left out."""
    fields = {
        "title": run.title,
        "body": run.body,
        "icon": run.icon_url,
        "image": run.image_url,
        "url": run.target_url,
        "campaign_id": run.campaign_id,
        "run_id": run.run_id,
    }
    document = {key: value for key, value in fields.items() if value}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def topic_for(run_id: str) -> str:
    """A run's RFC 8030 Topic: the same on every attempt, so a push service replaces a
    still-pending duplicate; 32 characters of the URL-safe base64 alphabet."""
    digest = hashlib.sha256(b"clarion-run:" + run_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]
