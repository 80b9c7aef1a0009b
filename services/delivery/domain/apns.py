"""Legacy Safari (macOS Safari <= 15 website push) over APNs: what a recipient is sent,
and what APNs' answer means for it.

The notification is made from the recipient's PushPayload JSON (campaign's legacy Safari
copy, rendered as for any browser): `aps.alert {title, body, action}` and `aps.url-args`,
which Safari fills into the site's URL format string (one per `%@`) to open on a click.
The args are read off the payload's click URL by matching it against the format.

Answers (Apple's "Handling notification responses from APNs"):
- 200: sent. 410 Unregistered / ExpiredToken (with the time the token stopped being
  valid): the subscriber is pruned (apns_unregistered), as a Web Push 404/410.
- 400 BadDeviceToken / DeviceTokenNotForTopic: that recipient fails
  (apns_bad_device_token / apns_token_not_for_topic); any other 400 is
  push_service_4xx; 413 PayloadTooLarge: payload_too_large.
- 429 TooManyRequests (and TooManyProviderTokenUpdates), 500, 503: retried with the
  backoff, each recipient at its own time, like a Web Push 429/5xx; no answer in time
  (timeout) or a connection that could not be opened: retried too.
- 403 (ExpiredProviderToken, InvalidProviderToken, BadCertificate, ...): the site's key
  or token is refused, for every device alike: the worker holds the site's APNs sends
  (domain/holds.py) instead of failing each recipient.
- The connection closed after the request was written, with no answer for it: APNs may
  have taken it and APNs removes no duplicate, so it is counted sent and not sent again
  (at most once). A request the connection's GOAWAY names unprocessed was not taken and
  is retried. Every attempt of a recipient carries the same apns-id and the run's
  apns-collapse-id, so even a resend after a crash shows as one notification.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta

from services.delivery.domain.ports import ApnsAnswer, ApnsCredentials
from services.delivery.domain.rules import (
    Expired,
    Failed,
    Reason,
    RetryLater,
    RetryPolicy,
    Sent,
    Verdict,
)
from services.delivery.store import APNS_HOLD_SERVICE

# How holds (domain/holds.py), attempt histories and metrics name APNs, wherever
# CLARION_APNS_URL points.
APNS_PUSH_SERVICE = APNS_HOLD_SERVICE
APNS_HOST = "api.push.apple.com"
# Safari's button label for opening the notification (aps.alert.action).
DEFAULT_ACTION = "View"
MAX_PAYLOAD_BYTES = 4096
_DEVICE_TOKEN = re.compile(r"^[0-9A-Fa-f]{64}$")
_APNS_ID_NAMESPACE = uuid.UUID("6f1c1c2e-5d3a-4a8e-9c7b-2f0e8d4b1a93")
_UNREGISTERED = frozenset({"Unregistered", "ExpiredToken"})


def valid_device_token(token: str) -> bool:
    """A Safari device token: 64 hex digits (nothing else may go into the request path)."""
    return bool(_DEVICE_TOKEN.match(token))


def apns_id(site_id: str, run_id: str, subscriber_id: str) -> str:
    """The recipient's apns-id: the same on every attempt (and after a crash)."""
    return str(uuid.uuid5(_APNS_ID_NAMESPACE, f"{site_id}\0{run_id}\0{subscriber_id}"))


def priority(urgency: str) -> int:
    """apns-priority from the run's urgency: 10 (now) unless it may wait (5)."""
    return 5 if urgency in ("low", "very-low") else 10


def credentials_fingerprint(credentials: ApnsCredentials) -> str:
    """What APNs checks of the site's provider token: team, key id and key (SHA-256,
    never the key itself): stored with an APNs hold, compared with later credentials."""
    digest = hashlib.sha256(b"apns\0" + credentials.team_id.encode() + b"\0")
    digest.update(credentials.key_id.encode() + b"\0")
    digest.update(hashlib.sha256(credentials.private_key).digest())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=256)
def _format_pattern(url_format: str) -> re.Pattern[str]:
    pieces = url_format.split("%@")
    return re.compile("(.*?)".join(re.escape(piece) for piece in pieces), re.DOTALL)


def url_args(url: str, url_format: str) -> list[str] | None:
    """The url-args that make Safari open `url` through the site's URL format string
    (one per `%@`); None when `url` does not have the format's shape (another site, say),
    or there is no url."""
    count = url_format.count("%@")
    if not url:
        return None
    if count == 0:
        return [] if url == url_format else None
    pattern = _format_pattern(url_format)
    found = pattern.fullmatch(url)
    if found is None:
        # Scheme and host compare without case (the format's may be written otherwise).
        found = re.compile(pattern.pattern, re.DOTALL | re.IGNORECASE).fullmatch(url)
    return list(found.groups()) if found else None


def apns_payload(push_payload: bytes, url_format: str) -> tuple[bytes, bool]:
    """The APNs payload for a recipient's PushPayload JSON, and whether its click URL
    fitted the URL format (if not, every url-arg is empty: Safari opens the format
    itself, e.g. the site's home page)."""
    fields = json.loads(push_payload)
    alert = {
        "title": str(fields.get("title", "")),
        "body": str(fields.get("body", "")),
        "action": DEFAULT_ACTION,
    }
    args = url_args(str(fields.get("url", "")), url_format)
    fitted = args is not None
    if args is None:
        args = [""] * url_format.count("%@")
    body = {"aps": {"alert": alert, "url-args": args}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), fitted


def decide_apns(
    answer: ApnsAnswer,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    expires_at: datetime | None = None,
) -> Verdict:
    """The verdict on attempt number `attempt` (1-based) of one legacy Safari recipient.
    A 403 is the worker's (it holds the site's APNs sends): here it fails the recipient."""
    status = answer.status
    if status == 200 or (status is None and answer.unconfirmed):
        return Sent()
    if status == 410 or answer.reason in _UNREGISTERED:
        return Failed(Reason.APNS_UNREGISTERED, unsubscribe=True)
    if status == 413:
        return Failed(Reason.PAYLOAD_TOO_LARGE)
    if status == 403:
        return Failed(Reason.PUSH_SERVICE_AUTH)
    if status == 400 and answer.reason == "BadDeviceToken":
        return Failed(Reason.APNS_BAD_DEVICE_TOKEN)
    if status == 400 and answer.reason == "DeviceTokenNotForTopic":
        return Failed(Reason.APNS_TOKEN_NOT_FOR_TOPIC)
    if status == 429:
        reason = Reason.PUSH_SERVICE_429
    elif status is None:
        reason = answer.error or Reason.CONNECTION_ERROR
    elif status >= 500:
        reason = Reason.PUSH_SERVICE_5XX
    else:
        return Failed(Reason.PUSH_SERVICE_4XX)
    if attempt >= policy.max_attempts:
        return Failed(reason)
    delay = policy.backoff(attempt)
    if expires_at is not None and now + timedelta(seconds=delay) >= expires_at:
        return Expired(reason)
    return RetryLater(reason, delay)


__all__ = [
    "APNS_HOST",
    "APNS_PUSH_SERVICE",
    "apns_id",
    "apns_payload",
    "credentials_fingerprint",
    "decide_apns",
    "priority",
    "url_args",
    "valid_device_token",
]
