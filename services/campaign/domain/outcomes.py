"""What happened to one recipient of a run, in one sentence for a person.

Keyed by the DeliveryReason words (clarion.common.v1.DeliveryReason without its prefix,
in lower case): a closed set, so every reason has its sentence here.
"""

from __future__ import annotations

from services.campaign.domain.ports import RecipientStatus

EXPLANATIONS: dict[str, str] = {
    "push_service_404": (
        "the push service said the subscription does not exist; "
        "the subscriber was unsubscribed"
    ),
    "push_service_410": (
        "the push service said the subscription is gone; the subscriber was unsubscribed"
    ),
    "payload_too_large": "the push service refused the message as too large (413)",
    "push_service_429": (
        "the push service kept asking us to slow down (429) until the retries ran out"
    ),
    "push_service_5xx": "the push service kept failing (5xx) until the retries ran out",
    "push_service_auth": (
        "the push service refused the site's VAPID signature (401/403; for legacy Safari, "
        "APNs refused the site's provider token, 403); check the site's VAPID keys or "
        "APNs key"
    ),
    "push_service_4xx": "the push service refused the request (4xx)",
    "timeout": "the push service did not answer in time, on every attempt",
    "connection_error": "the push service could not be reached, on every attempt",
    "endpoint_refused": (
        "the subscription's endpoint is not an allowed push service (or not a public "
        "address), so nothing was sent to it"
    ),
    "encryption_error": "the subscription's keys could not be used to encrypt the message",
    "no_vapid_credentials": (
        "the site has no usable VAPID key for this subscriber (none at all, or not the one "
        "it subscribed under: its vapid_key_id names a key the site does not have), so "
        "the message could not be signed"
    ),
    "unsubscribed": "the subscriber unsubscribed before the message was sent",
    "frequency_cap": "held back by the frequency cap",
    "dnd": "held back by the subscriber's do-not-disturb hours",
    "cut_off": "not sent: the run's cut-off passed before the subscriber's turn",
    "control_group": "in the control group, which gets no message",
    "cancelled": "the run was cancelled before this subscriber's message was sent",
    "expired_ttl": "the message's time to live passed before it could be sent",
    "apns_unregistered": "APNs said the device token is no longer valid",
    "apns_bad_device_token": (
        "APNs refused the device token as invalid (BadDeviceToken), so the legacy Safari "
        "notification was not sent"
    ),
    "apns_token_not_for_topic": (
        "APNs said the device token belongs to another Website Push ID "
        "(DeviceTokenNotForTopic)"
    ),
    "apns_no_credentials": (
        "the site has no legacy Safari (APNs) configuration, so its legacy Safari "
        "subscribers cannot be sent to; set it with SetLegacySafari"
    ),
    "local_time_passed": (
        "not sent: the campaign delivers at a local time that had already passed in the "
        "subscriber's time zone when the run started"
    ),
    "personalization_missing": (
        "not sent: the message prints a value this subscriber's profile does not have, "
        "and the campaign suppresses such recipients"
    ),
    "personalization_invalid": (
        "not sent: the message's template could not use this subscriber's values (e.g. a "
        "click URL that was not an http(s) URL once filled in)"
    ),
}


def explain(status: RecipientStatus, reason: str) -> str:
    """One sentence saying what happened to the recipient and why."""
    if status is RecipientStatus.SENT:
        return "the push service accepted the message for the subscriber's browser"
    if status is RecipientStatus.PENDING:
        if reason:
            return f"not sent yet: its last attempt is being retried ({reason})"
        return "queued and not sent yet"
    return EXPLANATIONS.get(reason, f"{status.value} ({reason or 'no reason given'})")
