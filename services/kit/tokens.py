"""Signed tokens that prove a browser was given something by Clarion.

An engagement token proves that a browser received one run's push (delivery signs it
into each recipient's payload; the gateway checks it on engagement events). An
unsubscribe token proves that a browser holds a subscription (the gateway hands it out
on subscribe and asks for it on unsubscribe). A Safari authentication token proves that
a legacy Safari request comes from a push package the gateway built for the site.

A token is HMAC-SHA256 over a purpose prefix and the length-prefixed UTF-8 parts, as
base64url without padding (43 characters). The prefix keeps one kind of token from
being accepted as the other; the length prefixes keep ("ab", "c") and ("a", "bc") apart.
Verification recomputes the token and compares in constant time, so only the canonical
encoding is accepted.

A click token (`click_path`, `parse_click_token`, below) is no new signature: it carries
an engagement token with the ids it signs, for the gateway's click redirect.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass, field

MIN_SECRET_BYTES = 16

_ENGAGEMENT = b"clarion engagement token v1"
_UNSUBSCRIBE = b"clarion unsubscribe token v1"
_SAFARI = b"clarion safari authentication token v1"


def engagement_token(secret: bytes, site_id: str, run_id: str, subscriber_id: str) -> str:
    """Proof that `subscriber_id` of `site_id` was sent run `run_id`."""
    return _sign(secret, _ENGAGEMENT, site_id, run_id, subscriber_id)


def verify_engagement_token(
    secret: bytes, token: str, site_id: str, run_id: str, subscriber_id: str
) -> bool:
    return _verify(secret, token, _ENGAGEMENT, site_id, run_id, subscriber_id)


def unsubscribe_token(secret: bytes, site_id: str, subscriber_id: str) -> str:
    """Proof that the caller holds subscription `subscriber_id` of `site_id`."""
    return _sign(secret, _UNSUBSCRIBE, site_id, subscriber_id)


def verify_unsubscribe_token(secret: bytes, token: str, site_id: str, subscriber_id: str) -> bool:
    return _verify(secret, token, _UNSUBSCRIBE, site_id, subscriber_id)


def safari_authentication_token(secret: bytes, site_id: str, website_push_id: str) -> str:
    """website.json's authenticationToken in the push packages of `site_id` for
    `website_push_id` (43 characters; Apple asks for at least 16). Safari sends it back
    (`Authorization: ApplePushNotifications <token>`) when it registers or removes a
    device: proof the request comes from a package Clarion built for that site."""
    return _sign(secret, _SAFARI, site_id, website_push_id)


def verify_safari_authentication_token(
    secret: bytes, token: str, site_id: str, website_push_id: str
) -> bool:
    return _verify(secret, token, _SAFARI, site_id, website_push_id)


def _sign(secret: bytes, purpose: bytes, *parts: str) -> str:
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
    message = bytearray(len(purpose).to_bytes(4, "big") + purpose)
    for part in parts:
        # surrogatepass: a lone surrogate (valid in JSON text) encodes instead of raising.
        encoded = part.encode("utf-8", "surrogatepass")
        message += len(encoded).to_bytes(4, "big") + encoded
    # The one-shot C implementation: delivery signs one token per recipient.
    digest = hmac.digest(bytes(secret), bytes(message), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _verify(secret: bytes, token: str, purpose: bytes, *parts: str) -> bool:
    expected = _sign(secret, purpose, *parts)
    if not isinstance(token, str) or not token.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), token.encode("ascii"))


# --- click links -----------------------------------------------------------------------
#
# A click link is the gateway's `GET /c/{click_token}[?b=1|2]`, which the service worker
# opens instead of the notification's URL: the gateway records the click and redirects to
# the URL delivery put in that recipient's push. The click token is four parts joined by
# "~": the site id, the run id, the subscriber id (all from the push and the SW's
# registration) and the push's engagement_token, which signs the other three. "~" is
# URL-unreserved (never percent-encoded, `encodeURIComponent` leaves it) and in none of
# the parts' alphabets (ids: A-Z a-z 0-9 - _ . :, a site id without . and :; the token:
# base64url), so the split is unambiguous. The button (`b`) is not signed: a recipient
# can claim another button of its own notification, as with the events API.

CLICK_PATH_PREFIX = "/c/"
CLICK_SEPARATOR = "~"
MAX_CLICK_BUTTON = 2
_CLICK_SITE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CLICK_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_CLICK_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class ClickToken:
    site_id: str
    run_id: str
    subscriber_id: str
    engagement_token: str = field(repr=False)

    def __str__(self) -> str:
        return CLICK_SEPARATOR.join(
            (self.site_id, self.run_id, self.subscriber_id, self.engagement_token)
        )


def click_path(
    site_id: str, run_id: str, subscriber_id: str, engagement_token: str, button: int = 0
) -> str:
    """The gateway path of a click on `button` (0: the body, 1 and 2: the actions) of the
    push `engagement_token` came with; ValueError for a part no link can carry."""
    token = ClickToken(site_id, run_id, subscriber_id, engagement_token)
    if parse_click_token(str(token)) != token:
        raise ValueError(
            "a click link needs a site id, run id and subscriber id of the id alphabet "
            "and a 43-character engagement token"
        )
    if button not in range(MAX_CLICK_BUTTON + 1):
        raise ValueError(f"button must be 0 to {MAX_CLICK_BUTTON}, got {button!r}")
    return f"{CLICK_PATH_PREFIX}{token}" + (f"?b={button}" if button else "")


def parse_click_token(text: str) -> ClickToken | None:
    """The parts of a click token; None for text that is not one (nothing is verified)."""
    parts = text.split(CLICK_SEPARATOR)
    if len(parts) != 4:
        return None
    site_id, run_id, subscriber_id, token = parts
    if not (
        _CLICK_SITE_ID.fullmatch(site_id)
        and _CLICK_ID.fullmatch(run_id)
        and _CLICK_ID.fullmatch(subscriber_id)
        and _CLICK_TOKEN.fullmatch(token)
    ):
        return None
    return ClickToken(site_id, run_id, subscriber_id, token)
