"""What a run sends: the notification JSON, its RFC 8030 headers and the Topic."""

from __future__ import annotations

import base64
import hashlib
from typing import Protocol

from services.kit.push_payload import MAX_PUSH_PAYLOAD_BYTES, push_payload

MAX_PAYLOAD_BYTES = MAX_PUSH_PAYLOAD_BYTES

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
    """The JSON the service worker shows (services.kit.push_payload)."""
    return push_payload(
        title=run.title,
        body=run.body,
        icon_url=run.icon_url,
        image_url=run.image_url,
        target_url=run.target_url,
        campaign_id=run.campaign_id,
        run_id=run.run_id,
    )


def topic_for(run_id: str) -> str:
    """A run's RFC 8030 Topic: the same on every attempt, so a push service replaces a
    still-pending duplicate; 32 characters of the URL-safe base64 alphabet."""
    digest = hashlib.sha256(b"clarion-run:" + run_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]
