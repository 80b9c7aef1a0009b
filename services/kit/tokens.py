"""Signed tokens that prove a browser was given something by Clarion.

An engagement token proves that a browser received one run's push (delivery signs it
into each recipient's payload; the gateway checks it on engagement events). An
unsubscribe token proves that a browser holds a subscription (the gateway hands it out
on subscribe and asks for it on unsubscribe).

A token is HMAC-SHA256 over a purpose prefix and the length-prefixed UTF-8 parts, as
base64url without padding (43 characters). The prefix keeps one kind of token from
being accepted as the other; the length prefixes keep ("ab", "c") and ("a", "bc") apart.
Verification recomputes the token and compares in constant time, so only the canonical
encoding is accepted.
"""

from __future__ import annotations

import base64
import hmac

MIN_SECRET_BYTES = 16

_ENGAGEMENT = b"clarion engagement token v1"
_UNSUBSCRIBE = b"clarion unsubscribe token v1"


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
