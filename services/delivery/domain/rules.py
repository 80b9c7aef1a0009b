"""What a push service's answer means for one recipient: sent, failed for good, or retry.

RFC 8030 §5 / RFC 8292: 201 accepted; 404/410 the subscription is gone; 413 the
payload is too large; 429 slow down (Retry-After); 5xx and timeouts are transient;
401/403 say our VAPID signature was refused.

A retry is never later than the message's TTL: one whose time would pass it (a
`Retry-After: 3600` on a 30-minute message) ends the recipient `expired` at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Reason(StrEnum):
    """Why a recipient ended as it did: the closed set of clarion.common.v1.DeliveryReason,
    each the enum value's name without its prefix, in lower case. Never free text."""

    PUSH_SERVICE_404 = "push_service_404"
    PUSH_SERVICE_410 = "push_service_410"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    PUSH_SERVICE_429 = "push_service_429"
    PUSH_SERVICE_5XX = "push_service_5xx"
    PUSH_SERVICE_AUTH = "push_service_auth"
    PUSH_SERVICE_4XX = "push_service_4xx"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    ENDPOINT_REFUSED = "endpoint_refused"
    ENCRYPTION_ERROR = "encryption_error"
    NO_VAPID_CREDENTIALS = "no_vapid_credentials"
    UNSUBSCRIBED = "unsubscribed"
    FREQUENCY_CAP = "frequency_cap"
    DND = "dnd"
    CUT_OFF = "cut_off"
    CONTROL_GROUP = "control_group"
    CANCELLED = "cancelled"
    EXPIRED_TTL = "expired_ttl"
    APNS_UNREGISTERED = "apns_unregistered"
    LOCAL_TIME_PASSED = "local_time_passed"
    PERSONALIZATION_MISSING = "personalization_missing"
    PERSONALIZATION_INVALID = "personalization_invalid"
    APNS_BAD_DEVICE_TOKEN = "apns_bad_device_token"
    APNS_TOKEN_NOT_FOR_TOPIC = "apns_token_not_for_topic"
    APNS_NO_CREDENTIALS = "apns_no_credentials"


SENT_STATUSES = frozenset({200, 201, 202})
GONE_STATUSES = frozenset({404, 410})
# What `decide` retries (with backoff, up to the policy's attempts): a Failed verdict
# with one of these reasons means the attempts ran out.
RETRIED_REASONS = frozenset(
    {Reason.PUSH_SERVICE_429, Reason.PUSH_SERVICE_5XX, Reason.TIMEOUT, Reason.CONNECTION_ERROR}
)


@dataclass(frozen=True)
class PushAnswer:
    """One attempt's result: an HTTP status, or an `error` (timeout, connection_error,
    endpoint_refused) when there was no answer."""

    status: int | None = None
    error: Reason | None = None
    retry_after: str | None = None
    body_excerpt: str = ""


@dataclass(frozen=True)
class Sent:
    pass


@dataclass(frozen=True)
class Failed:
    reason: Reason
    # The push service says the subscription no longer exists: stop sending to it.
    unsubscribe: bool = False


@dataclass(frozen=True)
class RetryLater:
    reason: Reason
    delay_seconds: float


@dataclass(frozen=True)
class Expired:
    """The retry the answer calls for would come after the message's TTL: the
    recipient ends expired (reason expired_ttl) now; `reason` is what the answer meant
    (its attempt history shows it)."""

    reason: Reason


Verdict = Sent | Failed | RetryLater | Expired


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential in the attempt number, capped, with up to 25% jitter so a burst of
        failures does not come back as a burst."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return delay * (1 + 0.25 * (rng or random).random())


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    retry_after: str | None, attempt: int, policy: RetryPolicy, now: datetime
) -> float:
    """How long to wait before retrying an answer that may carry Retry-After: the
    header exactly (delay-seconds or an HTTP date; not capped by the backoff's
    maximum: the push service knows best), but never sooner than the first backoff
    step, so `Retry-After: 0` means "soon", not "now" (and a burst of them comes back
    jittered); without the header (or an unreadable one), the backoff."""
    waited = parse_retry_after(retry_after, now)
    if waited is None:
        return policy.backoff(attempt)
    if waited <= policy.base_seconds:
        return policy.backoff(1)
    return waited


def decide(
    answer: PushAnswer,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    expires_at: datetime | None = None,
) -> Verdict:
    """The verdict on attempt number `attempt` (1-based) for one recipient whose
    message expires at `expires_at` (None: never)."""
    status = answer.status
    if status in SENT_STATUSES:
        return Sent()
    if status in GONE_STATUSES:
        gone = Reason.PUSH_SERVICE_404 if status == 404 else Reason.PUSH_SERVICE_410
        return Failed(gone, unsubscribe=True)
    if status == 413:
        return Failed(Reason.PAYLOAD_TOO_LARGE)
    if status == 429:
        reason = Reason.PUSH_SERVICE_429
        delay = retry_delay(answer.retry_after, attempt, policy, now)
    elif status is None:
        reason = Reason(answer.error) if answer.error else Reason.CONNECTION_ERROR
        if reason == Reason.ENDPOINT_REFUSED:
            return Failed(reason)
        delay = policy.backoff(attempt)
    elif status >= 500:
        # A 503 may say when to come back (RFC 9110 §10.2.3), as a 429 does.
        reason = Reason.PUSH_SERVICE_5XX
        delay = retry_delay(answer.retry_after, attempt, policy, now)
    elif status in (401, 403):
        return Failed(Reason.PUSH_SERVICE_AUTH)
    else:
        return Failed(Reason.PUSH_SERVICE_4XX)
    if attempt >= policy.max_attempts:
        return Failed(reason)
    if expires_at is not None and now + timedelta(seconds=delay) >= expires_at:
        return Expired(reason)
    return RetryLater(reason, delay)
